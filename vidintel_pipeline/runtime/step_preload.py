"""What every step process imports first, imported once in the multiprocess executor's fork server.

Forked from a server that has imported this module, a step process starts with the code location (Dagster, the
plugins, numpy, OpenCV, PyAV: 2.3 s to import here) and the instance's storage modules (SQLAlchemy and Dagster's
run, event and compute-log storage: 2.0 s more) already loaded. The server opens the instance only to load those
modules and closes it again before any fork, so no connection is shared with a step.
"""

from __future__ import annotations

import os

import dagster as dg

import vidintel_pipeline.definitions  # noqa: F401


def _load_instance_modules() -> None:
    if not os.environ.get("DAGSTER_HOME"):
        return
    try:
        instance = dg.DagsterInstance.get()
        for part in ("run_storage", "event_log_storage", "schedule_storage", "compute_log_manager", "run_launcher"):
            getattr(instance, part)
        instance.dispose()
    except Exception:  # never in a step's way: a step whose server could not load them imports them itself
        return


_load_instance_modules()
