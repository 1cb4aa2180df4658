"""Which executor runs a run's steps (``VIDINTEL_EXECUTOR``): on this machine, or on Celery or Kubernetes workers.

* ``multiprocess`` (the default): a process per step on the run worker's machine, forked from a server process that
  has already imported the code location (``forkserver``), not spawned fresh (Dagster's default, ``spawn``). A run
  whose source is small (its ``vidintel/source_bytes`` tag, set by the sensor and ``ingest --submit``, at most
  ``VIDINTEL_IN_PROCESS_MAX_MB``, 32 by default: about a minute of 720p) runs its steps in the run worker instead,
  as ``in_process`` does: the server's start-up and a process per step cost more than a short video's analysis.
* ``in_process``: every step in the run worker's process; cheapest for many short videos on one machine.
* ``celery``: dagster-celery's ``celery_executor`` (``pip install 'vidintel[distributed]'``): each step is a
  Celery task on the queue its op tags name (``gpu_analysis``: ``dagster-celery/queue: gpu``; the rest: the
  default ``dagster`` queue), so only GPU workers run GPU steps. Broker and backend: ``VIDINTEL_CELERY_BROKER``
  (and ``VIDINTEL_CELERY_BACKEND``, else the broker) when set, so sensor runs need no run config; otherwise the
  run config's ``execution.config``.
* ``k8s``: dagster-k8s's ``k8s_job_executor``: a Kubernetes Job per step, ``gpu_analysis`` with one
  ``nvidia.com/gpu`` on a GPU node (its ``dagster-k8s/config`` op tag).

Whatever the choice, a per-video run holds its video's lock from first step to last
(:func:`vidintel_pipeline.storage.locks.video_locked`).
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any, Optional

import dagster as dg

from vidintel_pipeline.storage.locks import video_locked

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


def small_in_process(inner):  # untyped, as locks.video_locked: ExecutorDefinition's attributes are Optional
    """``inner`` (the multiprocess executor), except that a run of a small source executes in its own process.

    Through the daemon, 10 distinct 8 s 640x360 clips took 89.6 s with every step forked from the preloaded
    server (6.7 videos a minute, median run 9.4 s) and 64.5 s with the steps in the run worker (9.3 a minute,
    median run 3.9 s): each run starts its own fork server, which imports the code location again.
    """

    class SmallInProcessExecutor(dg.Executor):
        def __init__(self, multi: dg.Executor, single: dg.Executor):
            self.multi, self.single = multi, single

        @property
        def retries(self):
            return self.multi.retries

        @property
        def step_dependency_config(self):
            return self.multi.step_dependency_config

        def execute(self, plan_context, execution_plan):
            chosen = self.single if runs_in_process(plan_context.dagster_run.tags) else self.multi
            yield from chosen.execute(plan_context, execution_plan)

    def create(init_context):
        config = init_context.executor_config
        shared = {k: config[k] for k in ("retries", "step_dependency_config") if k in config}  # what both read
        in_process: Any = dg.in_process_executor  # its creation fn reads only the context's executor_config
        single = in_process.executor_creation_fn(SimpleNamespace(executor_config=shared))
        return SmallInProcessExecutor(inner.executor_creation_fn(init_context), single)

    return dg.ExecutorDefinition(
        name=inner.name,
        config_schema=inner.config_schema,
        requirements=inner.get_requirements,
        executor_creation_fn=create,
        description=f"{inner.description or inner.name}; a small source's run executes in its own process",
    )


def choose(name: Optional[str] = None) -> dg.ExecutorDefinition:
    """The executor ``name`` (default: ``$VIDINTEL_EXECUTOR``, else multiprocess), locked per video."""
    name = (name if name is not None else os.environ.get(EXECUTOR_ENV, "")).strip().lower() or "multiprocess"
    if name == "multiprocess":
        return video_locked(small_in_process(MULTIPROCESS))
    if name == "in_process":
        return video_locked(dg.in_process_executor)
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
