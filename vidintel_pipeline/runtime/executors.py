"""Which executor runs a run's steps (``VIDINTEL_EXECUTOR``): on this machine, or on Celery or Kubernetes workers.

* ``multiprocess`` (the default): a process per step on the run worker's machine, forked from a server process that
  has already imported the code location (``forkserver``), not spawned fresh (Dagster's default, ``spawn``).
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
from typing import Optional

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


def choose(name: Optional[str] = None) -> dg.ExecutorDefinition:
    """The executor ``name`` (default: ``$VIDINTEL_EXECUTOR``, else multiprocess), locked per video."""
    name = (name if name is not None else os.environ.get(EXECUTOR_ENV, "")).strip().lower() or "multiprocess"
    if name == "multiprocess":
        return video_locked(MULTIPROCESS)
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
