"""Which executor runs a run's steps (``VIDINTEL_EXECUTOR``): on this machine, or on Celery or Kubernetes workers.

* ``multiprocess`` (the default): a process per step on the run worker's machine.
* ``in_process``: every step in the run worker's process; cheapest for many short videos on one machine.
* ``celery``: dagster-celery's ``celery_executor`` (``pip install 'vidintel[distributed]'``): each step is a
  Celery task on the queue its op tags name (``gpu_analysis``: ``dagster-celery/queue: gpu``; the rest: the
  default ``dagster`` queue), so only GPU workers run GPU steps. Broker and backend come from the run config's
  ``execution.config`` or dagster-celery's defaults.
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
CHOICES = ("multiprocess", "in_process", "celery", "k8s")


def choose(name: Optional[str] = None) -> dg.ExecutorDefinition:
    """The executor ``name`` (default: ``$VIDINTEL_EXECUTOR``, else multiprocess), locked per video."""
    name = (name if name is not None else os.environ.get(EXECUTOR_ENV, "")).strip().lower() or "multiprocess"
    if name == "multiprocess":
        return video_locked(dg.multiprocess_executor)
    if name == "in_process":
        return video_locked(dg.in_process_executor)
    if name == "celery":
        try:
            from dagster_celery import celery_executor
        except ImportError as exc:
            raise dg.DagsterInvalidDefinitionError(
                f"{EXECUTOR_ENV}=celery needs dagster-celery: pip install 'vidintel[distributed]'"
            ) from exc
        return video_locked(celery_executor)
    if name == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError as exc:
            raise dg.DagsterInvalidDefinitionError(
                f"{EXECUTOR_ENV}=k8s needs dagster-k8s: pip install 'vidintel[deploy]'"
            ) from exc
        return video_locked(k8s_job_executor)
    raise dg.DagsterInvalidDefinitionError(f"{EXECUTOR_ENV}={name!r}: choose one of {', '.join(CHOICES)}")
