"""Steps in this process, the independent ones side by side in threads: the transcript beside the visual pass.

Dagster's in-process executor runs one step at a time. A video's two long steps need only the audio and the chunks,
and neither fills two cores: faster-whisper ran at 119 % CPU and the visual pass (a decoder process feeding numpy)
at about 160 % on this 2-core machine, both mostly outside the GIL. On the 5-minute 720p bench video the two
took 20.9 s one after the other and 17.7-18.8 s side by side in one process. Each step runs in a worker thread of
the run's process; this thread keeps Dagster's bookkeeping (the plan's state, hooks, skips) as its in-process
loop does, and yields every step's events as they come.

Concurrency: ``VIDINTEL_STEP_THREADS`` steps at once, by default as many as this process's CPUs (at most 2:
no job here has more than two steps that can run at once). A batch worker pinned to one CPU
(:mod:`vidintel_pipeline.runtime.batch`) gets 1, and runs Dagster's own loop, one step after another.

Interrupts: signals reach only the main thread, which Dagster makes hold them until a step's user code is at a
safe point. Here the main thread forwards one to every running step as ``DagsterExecutionInterruptedError``,
raised in the step's thread when it next runs Python code (a decoder read or a transcribed segment: well under a
second), so each step unwinds (its decoder processes stopped) and fails as interrupted, as in-process steps do.
"""

from __future__ import annotations

import ctypes
import os
import queue
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Optional

import dagster as dg
import dagster._check as check
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.compute_logs import create_compute_log_file_key
from dagster._core.execution.context.system import PlanExecutionContext, PlanOrchestrationContext
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.execute_in_process import (
    core_execute_in_process,
    merge_run_tags,
    type_check_and_normalize_args,
)
from dagster._core.execution.plan.execute_plan import (
    _trigger_hook,
    dagster_event_sequence_for_step,
    inner_plan_execution_iterator,
)
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode
from dagster._core.execution.step_dependency_config import StepDependencyConfig
from dagster._utils.error import serializable_error_info_from_exc_info

from vidintel_pipeline.runtime.cpus import usable_cpus

STEP_THREADS_ENV = "VIDINTEL_STEP_THREADS"
MAX_DEFAULT_THREADS = 2  # transcript and visual_analysis: the most steps of a job here that can run at once


def step_threads() -> int:
    """How many steps run at once in this process (``VIDINTEL_STEP_THREADS``, else this process's CPUs, at most 2)."""
    raw = os.environ.get(STEP_THREADS_ENV, "").strip()
    if not raw:
        return max(1, min(MAX_DEFAULT_THREADS, usable_cpus()))
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise dg.DagsterInvalidConfigError(f"{STEP_THREADS_ENV} must be a whole number of steps, 1 or more", [], raw)
    return n


POLL_S = 0.2  # how often the main thread looks for an interrupt, a retry that is due, or a step thread that died


@dataclass
class _Running:
    context: Any  # the step's StepExecutionContext
    thread: threading.Thread
    events: list[DagsterEvent] = field(default_factory=list)
    interrupted: bool = False


_DONE = object()


def _drive(key: str, step_context: Any, out: queue.Queue) -> None:
    """A step's events into ``out`` as it produces them, then ``_DONE`` (an exception it raised before that)."""
    try:
        for event in dagster_event_sequence_for_step(step_context):
            out.put((key, event))
    except BaseException as exc:  # an interrupt, or Dagster's own error: the main thread raises it
        out.put((key, exc))
    finally:
        out.put((key, _DONE))


def _interrupt(thread: threading.Thread) -> None:
    """Raise DagsterExecutionInterruptedError in ``thread`` when it next runs Python code."""
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(DagsterExecutionInterruptedError)
        )


def threaded_plan_iterator(
    job_context: PlanExecutionContext, execution_plan: ExecutionPlan, max_concurrent: int
) -> Iterator[DagsterEvent]:
    """Dagster's ``inner_plan_execution_iterator``, with up to ``max_concurrent`` steps running in threads."""
    compute_log_manager = job_context.instance.compute_log_manager
    step_keys = [step.key for step in execution_plan.get_steps_to_execute_in_topo_order()]
    with ExitStack() as stack:
        concurrency = stack.enter_context(InstanceConcurrencyContext(job_context.instance, job_context.dagster_run))
        active = stack.enter_context(
            execution_plan.start(
                retry_mode=job_context.retry_mode,
                instance_concurrency_context=concurrency,
                step_dependency_config=job_context.step_dependency_config,
            )
        )
        capture = stack.enter_context(ExitStack())
        log_key = compute_log_manager.build_log_key_for_run(job_context.run_id, create_compute_log_file_key())
        try:  # one capture of the process's output for the whole run, as the in-process loop does
            log_context = capture.enter_context(compute_log_manager.capture_logs(log_key))
            yield DagsterEvent.capture_logs(job_context, step_keys, log_key, log_context)
        except Exception:
            yield DagsterEvent.engine_event(
                job_context,
                "Exception while setting up compute log capture",
                EngineEventData(error=serializable_error_info_from_exc_info(sys.exc_info())),
            )

        out: queue.Queue = queue.Queue()
        running: dict[str, _Running] = {}
        error: Optional[BaseException] = None  # the first a step thread raised: raised here once all are done
        stopping = False

        def finish(key: str) -> Iterator[DagsterEvent]:
            step = running.pop(key)
            active.verify_complete(job_context, key)
            for event in active.plan_events_iterator(job_context):  # steps skipped or abandoned after this one
                step.events.append(event)
                yield event
            yield from _trigger_hook(step.context, step.events)

        def take(item: tuple[str, Any]) -> Iterator[DagsterEvent]:
            nonlocal error, stopping
            key, what = item
            if key not in running:
                return  # finished already (its thread died before saying so)
            if what is _DONE:
                yield from finish(key)
            elif isinstance(what, BaseException):
                error, stopping = error or what, True
            else:
                running[key].events.append(what)
                yield what
                active.handle_event(what)

        while running or (not stopping and not active.is_complete):
            if active.check_for_interrupts() and not stopping:
                stopping = True
                active.mark_interrupted()
                yield DagsterEvent.engine_event(
                    job_context,
                    f"Interrupted: stopping the running steps {sorted(running)}",
                    EngineEventData.interrupted(sorted(running)),
                )
            if stopping:
                for run in running.values():
                    if not run.interrupted:
                        run.interrupted = True
                        _interrupt(run.thread)
            else:
                for step in active.get_steps_to_execute(limit=max_concurrent - len(running)):
                    context = job_context.for_step(step, active.get_known_state())
                    missing = [k for k in context.required_resource_keys if not hasattr(context.resources, k)]
                    check.invariant(not missing, f"step {step.key} is missing the resources {missing}")
                    thread = threading.Thread(
                        target=_drive, args=(step.key, context, out), name=f"vidintel-step-{step.key}", daemon=True
                    )
                    running[step.key] = _Running(context, thread)
                    thread.start()
                yield from active.concurrency_event_iterator(job_context)
            if not running:
                if not stopping and not active.is_complete:
                    active.sleep_til_ready()  # a step up for retry later, or one waiting on a concurrency pool
                continue
            try:
                item = out.get(timeout=POLL_S)
            except queue.Empty:
                dead = [k for k, r in running.items() if not r.thread.is_alive()]
                while True:  # what a dead thread put before it ended, then the thread itself
                    try:
                        yield from take(out.get_nowait())
                    except queue.Empty:
                        break
                for key in dead:
                    if key in running:
                        yield from finish(key)
                continue
            yield from take(item)

        try:
            capture.close()
        except Exception:
            yield DagsterEvent.engine_event(
                job_context,
                "Exception while cleaning up compute log capture",
                EngineEventData(error=serializable_error_info_from_exc_info(sys.exc_info())),
            )
        if error is not None:
            raise error


class ThreadedExecutor(dg.Executor):
    """Steps in the run's process, up to ``max_concurrent`` at once (1: Dagster's in-process loop)."""

    def __init__(
        self,
        retries: RetryMode,
        step_dependency_config: Optional[StepDependencyConfig] = None,
        max_concurrent: Optional[int] = None,
    ):
        self._retries = retries
        self._step_dependency_config = step_dependency_config or StepDependencyConfig.default()
        self.max_concurrent = max_concurrent if max_concurrent is not None else step_threads()

    @property
    def retries(self) -> RetryMode:
        return self._retries

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        return self._step_dependency_config

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        n = self.max_concurrent
        yield DagsterEvent.engine_event(
            plan_context,
            f"Executing steps in process (pid: {os.getpid()}), up to {n} at once",
            event_specific_data=EngineEventData.in_process(os.getpid(), execution_plan.step_keys_to_execute),
        )

        def iterator(job_context: PlanExecutionContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
            if n <= 1:
                with InstanceConcurrencyContext(job_context.instance, job_context.dagster_run) as concurrency:
                    yield from inner_plan_execution_iterator(job_context, execution_plan, concurrency)
            else:
                yield from threaded_plan_iterator(job_context, execution_plan, n)

        yield from ExecuteRunWithPlanIterable(
            execution_plan=plan_context.execution_plan,
            iterator=iterator,
            execution_context_manager=PlanExecutionContextManager(
                job=plan_context.job,
                retry_mode=plan_context.retry_mode,
                execution_plan=plan_context.execution_plan,
                run_config=plan_context.run_config,
                dagster_run=plan_context.dagster_run,
                instance=plan_context.instance,
                raise_on_error=plan_context.raise_on_error,
                output_capture=plan_context.output_capture,
                step_dependency_config=self.step_dependency_config,
            ),
        )


def threaded_executor(max_concurrent: Optional[int] = None) -> dg.ExecutorDefinition:
    """An executor definition for :class:`ThreadedExecutor` (retries enabled, as ``execute_in_process``'s)."""
    return dg.ExecutorDefinition(
        name="in_process_threaded",
        executor_creation_fn=lambda _context: ThreadedExecutor(RetryMode.ENABLED, max_concurrent=max_concurrent),
        description="steps in the run's process, independent ones side by side in threads",
    )


def execute_threaded(
    job: dg.JobDefinition,
    *,
    instance: dg.DagsterInstance,
    partition_key: Optional[str] = None,
    tags: Optional[Mapping[str, str]] = None,
    run_config: Optional[Mapping[str, Any]] = None,
    asset_selection: Optional[Sequence[dg.AssetKey]] = None,
    raise_on_error: bool = False,
    max_concurrent: Optional[int] = None,
) -> dg.ExecuteInProcessResult:
    """``job.execute_in_process(...)`` with :class:`ThreadedExecutor` in place of Dagster's in-process executor
    (which ``execute_in_process`` always uses): the same run on the same instance, the same result."""
    n = max_concurrent if max_concurrent is not None else step_threads()
    if n <= 1:
        return job.execute_in_process(
            run_config=run_config,
            instance=instance,
            partition_key=partition_key,
            tags=tags,
            asset_selection=asset_selection,
            raise_on_error=raise_on_error,
        )
    config, _, selection, _, partition_key, _ = type_check_and_normalize_args(
        run_config=run_config, partition_key=partition_key, asset_selection=asset_selection
    )
    ephemeral = job.as_ephemeral_job(resource_defs={}, input_values={}, asset_selection=selection)
    return core_execute_in_process(
        job=InMemoryJob(ephemeral.with_executor_def(threaded_executor(n))),
        run_config=config,
        instance=instance,
        output_capturing_enabled=True,
        raise_on_error=raise_on_error,
        run_tags=merge_run_tags(
            job_def=job,
            partition_key=partition_key,
            tags=tags,
            asset_selection=selection,
            instance=instance,
            run_config=config,
        ),
        asset_selection=frozenset(selection),
    )
