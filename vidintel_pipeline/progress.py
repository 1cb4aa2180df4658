"""Progress through the seed's ingestion phases, to the run's event log and to in-process listeners.

Each report is one structured log line in the Dagster run (``phase=... progress=...``) so operators see
it in the UI; the ``vidintel`` CLI registers a listener to draw its progress bar from the same reports.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

from .contracts import IngestionPhase

Listener = Callable[[dict[str, Any]], None]
_listeners: list[Listener] = []


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def report(context: Optional[Any], phase: IngestionPhase, progress: float, **info: Any) -> None:
    progress = max(0.0, min(100.0, progress))
    extras = " ".join(f"{k}={v}" for k, v in info.items())
    if context is not None:
        context.log.info(f"phase={phase.value} progress={progress:.1f}% {extras}".rstrip())
    event = {"phase": phase.value, "phase_progress": round(progress, 1), **info}
    for listener in list(_listeners):
        listener(event)
