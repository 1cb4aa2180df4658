"""Which executor runs a run's steps (``VIDINTEL_EXECUTOR``): on this machine, or on Celery or Kubernetes workers.

* ``multiprocess`` (the default): a process per step on the run worker's machine, forked from a server process that
  has already imported the code location (``forkserver``), not spawned fresh (Dagster's default, ``spawn``). A run
  whose source is small (its ``vidintel/source_bytes`` tag, set by the sensor and ``ingest --submit``, at most
  ``VIDINTEL_IN_PROCESS_MAX_MB``, 32 by default: about a minute of 720p) runs its steps in the run worker instead,
  as ``in_process`` does (threads too): the server's start-up and a process per step cost more than a short
  video's analysis.
* ``in_process``: every step in the run worker's process (independent steps side by side in threads,
  ``VIDINTEL_STEP_THREADS``: :mod:`~vidintel_pipeline.runtime.threaded`); cheapest for many short videos on one
  machine.
* ``celery``: dagster-celery's ``celery_executor`` (``pip install 'vidintel[distributed]'``): each step is a
  Celery task on the queue its op tags name (``gpu_analysis``: ``dagster-celery/queue: gpu``; the rest: the
  default ``dagster`` queue), so only GPU workers run GPU steps. Broker and backend: ``VIDINTEL_CELERY_BROKER``
  (and ``VIDINTEL_CELERY_BACKEND``, else the broker) when set, so sensor runs need no run config; otherwise the
  run config's ``execution.config``.
* ``k8s``: dagster-k8s's ``k8s_job_executor``: a Kubernetes Job per step, ``gpu_analysis`` with one
  ``nvidia.com/gpu`` on a GPU node (its ``dagster-k8s/config`` op tag).

Whatever the choice, a per-video run holds its video's lock from first step to last
(:func:`video_locked`).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

import dagster as dg

from vidintel_pipeline.storage.layout import InvalidIdError, VideoRef
from vidintel_pipeline.storage.locks import held, video_lock_name

EXECUTOR_ENV = "VIDINTEL_EXECUTOR"
BROKER_ENV, BACKEND_ENV = "VIDINTEL_CELERY_BROKER", "VIDINTEL_CELERY_BACKEND"
CHOICES = ("multiprocess", "in_process", "celery", "k8s")


# Spawned, every step process imported Dagster and vidintel again (2.5 s alone, more with 2 runs' steps starting at
# once on 2 cores): an 8 s clip's run through the daemon took 58 s (median of 20), 4-11 s of each step spent between
# STEP_WORKER_STARTING and STEP_START. Forked from a server that has imported the code location and the instance's
# storage modules (step_preload.py), a step starts without importing either.
PRELOAD = ["vidintel_pipeline.runtime.step_preload"]  # the code location and the instance storage modules
MULTIPROCESS = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": PRELOAD}}}, name="multiprocess"
)


SOURCE_BYTES_TAG = "vidintel/source_bytes"  # the source's size, on the runs the sensor and `ingest --submit` request
IN_PROCESS_MAX_MB_ENV = "VIDINTEL_IN_PROCESS_MAX_MB"


def in_process_max_bytes() -> int:
    """Sources up to this size run in the run worker's process (``VIDINTEL_IN_PROCESS_MAX_MB``; 0: never)."""
    try:
        return int(float(os.environ.get(IN_PROCESS_MAX_MB_ENV, "32")) * 1e6)
    except ValueError:
        raise dg.DagsterInvalidConfigError(
            f"{IN_PROCESS_MAX_MB_ENV} must be a number of megabytes", [], os.environ.get(IN_PROCESS_MAX_MB_ENV)
        ) from None


def runs_in_process(tags: dict[str, str]) -> bool:
    """Whether a run with these tags is small enough to run its steps in its own process."""
    try:
        size = int(tags.get(SOURCE_BYTES_TAG, ""))
    except ValueError:  # untagged (launched from the UI, a backfill): the size is unknown, so steps get processes
        return False
    return 0 <= size <= in_process_max_bytes()


class Wrapping(dg.Executor):
    """An executor that runs ``wrapped``'s plan its own way; everything else is read from ``wrapped``.

    Dagster reads ``retries`` and ``step_dependency_config`` off the run's executor, and an executor's own step
    loop reads its settings back from ``plan_context.executor`` (dagster-celery: app_args, broker, backend, ...).
    """

    def __init__(self, wrapped: dg.Executor):
        self.wrapped = wrapped

    def __getattr__(self, name):
        return getattr(self.wrapped, name)

    @property
    def retries(self):
        return self.wrapped.retries

    @property
    def step_dependency_config(self):
        return self.wrapped.step_dependency_config


def wrapped_definition(inner, make: Callable[[Any, dg.Executor], dg.Executor], what: str) -> dg.ExecutorDefinition:
    """``inner`` with the same name, config and requirements, its executor wrapped by ``make(init_context, it)``."""
    return dg.ExecutorDefinition(
        name=inner.name,
        config_schema=inner.config_schema,
        requirements=inner.get_requirements,
        executor_creation_fn=lambda init_context: make(init_context, inner.executor_creation_fn(init_context)),
        description=f"{inner.description or inner.name}; {what}",
    )


def threaded_like(other: dg.Executor) -> dg.Executor:
    """The threaded in-process executor (:mod:`~vidintel_pipeline.runtime.threaded`), with ``other``'s retries and
    step dependency settings."""
    from vidintel_pipeline.runtime.threaded import ThreadedExecutor

    return ThreadedExecutor(other.retries, other.step_dependency_config)


def in_process_threaded(inner):  # untyped, as small_in_process
    """``inner`` (Dagster's in-process executor, for its config schema) running its steps in threads."""
    return wrapped_definition(inner, lambda _context, it: threaded_like(it), "independent steps side by side")


def small_in_process(inner):  # untyped: ExecutorDefinition's attributes are Optional
    """``inner`` (the multiprocess executor), except that a run of a small source executes in its own process.

    Through the daemon, 10 distinct 8 s 640x360 clips took 89.6 s with every step forked from the preloaded
    server (6.7 videos a minute, median run 9.4 s) and 64.5 s with the steps in the run worker (9.3 a minute,
    median run 3.9 s): each run starts its own fork server, which imports the code location again.
    """

    class SmallInProcessExecutor(Wrapping):
        def __init__(self, multi: dg.Executor, single: dg.Executor):
            super().__init__(multi)
            self.single = single

        def execute(self, plan_context, execution_plan):
            chosen = self.single if runs_in_process(plan_context.dagster_run.tags) else self.wrapped
            yield from chosen.execute(plan_context, execution_plan)

    def make(_init_context, multi: dg.Executor) -> dg.Executor:
        return SmallInProcessExecutor(multi, threaded_like(multi))

    return wrapped_definition(inner, make, "a small source's run executes in its own process")


def video_locked(inner):
    """``inner`` (an executor definition) whose runs of a per-video partition hold that video's lock.

    The executor's ``execute`` runs in the run worker for the whole run, around every step process, so
    the lock covers the run from first step to last. A run that finds the lock held (a ``vidintel
    ingest`` of the same video) waits for it and says so in its event log. A run in the CLI's process
    (:func:`~vidintel_pipeline.runtime.threaded.execute_threaded`) never uses the job's executor: the CLI holds the
    lock itself (:mod:`vidintel_pipeline.storage.locks`).
    """

    class VideoLockedExecutor(Wrapping):
        def execute(self, plan_context, execution_plan):
            run = plan_context.dagster_run
            try:
                ref = VideoRef.from_partition_key(run.tags.get("dagster/partition", ""))
            except InvalidIdError:
                yield from self.wrapped.execute(plan_context, execution_plan)  # not a per-video run
                return

            def waiting(who: str) -> None:
                plan_context.log.warning(
                    f"{ref.project_id}/{ref.video_id} is being ingested by {who}: this run waits for it to finish"
                )

            with held(video_lock_name(ref), f"run {run.run_id}", wait=True, waiting=waiting):
                yield from self.wrapped.execute(plan_context, execution_plan)

    return wrapped_definition(
        inner,
        lambda _context, it: VideoLockedExecutor(it),
        "a per-video run holds its video's lock (vidintel_pipeline.storage.locks)",
    )


def choose(name: Optional[str] = None) -> dg.ExecutorDefinition:
    """The executor ``name`` (default: ``$VIDINTEL_EXECUTOR``, else multiprocess), locked per video."""
    name = (name if name is not None else os.environ.get(EXECUTOR_ENV, "")).strip().lower() or "multiprocess"
    if name == "multiprocess":
        return video_locked(small_in_process(MULTIPROCESS))
    if name == "in_process":
        return video_locked(in_process_threaded(dg.in_process_executor))
    if name == "celery":
        try:
            from dagster_celery import celery_executor
        except ImportError as exc:
            raise dg.DagsterInvalidDefinitionError(
                f"{EXECUTOR_ENV}=celery needs dagster-celery: pip install 'vidintel[distributed]'"
            ) from exc
        locked = video_locked(celery_executor)
        broker = os.environ.get(BROKER_ENV)
        if not broker:
            return locked  # broker and backend from each run's execution config
        # runs the sensor requests carry no execution config: take the broker (and backend) from the environment,
        # read where the run executes
        return locked.configured(
            {
                "broker": {"env": BROKER_ENV},
                "backend": {"env": BACKEND_ENV if os.environ.get(BACKEND_ENV) else BROKER_ENV},
                # acknowledged when done, requeued when its worker dies: a lost worker's step runs again elsewhere
                "config_source": {"task_acks_late": True, "task_reject_on_worker_lost": True},
            }
        )
    if name == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError as exc:
            raise dg.DagsterInvalidDefinitionError(
                f"{EXECUTOR_ENV}=k8s needs dagster-k8s: pip install 'vidintel[deploy]'"
            ) from exc
        return video_locked(k8s_job_executor)
    raise dg.DagsterInvalidDefinitionError(f"{EXECUTOR_ENV}={name!r}: choose one of {', '.join(CHOICES)}")
