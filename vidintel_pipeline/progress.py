"""Progress through the seed's ingestion phases, to the run's event log and to in-process listeners.

Each report is one structured log line in the Dagster run (``phase=... progress=...``) so operators see
it in the UI, at most one every ``LOG_EVERY_S`` per phase and step (a line is a write to the event log);
the ``vidintel`` CLI registers a listener to draw its progress bar from every report.
"""

from __future__ import annotations

import time
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


LOG_EVERY_S = 2.0  # the run's log gets a phase's progress at most this often (listeners get every report)
_logged: dict[tuple[int, str], float] = {}


def report(context: Optional[Any], phase: IngestionPhase, progress: float, **info: Any) -> None:
    progress = max(0.0, min(100.0, progress))
    extras = " ".join(f"{k}={v}" for k, v in info.items())
    if context is not None:
        key, now = (id(context), phase.value), time.monotonic()
        if progress in (0.0, 100.0) or now - _logged.get(key, -LOG_EVERY_S) >= LOG_EVERY_S:
            _logged[key] = now
            if progress == 100.0:
                _logged.pop(key)  # the phase is done in this step
            context.log.info(f"phase={phase.value} progress={progress:.1f}% {extras}".rstrip())
    event = {"phase": phase.value, "phase_progress": round(progress, 1), **info}
    for listener in list(_listeners):
        listener(event)
