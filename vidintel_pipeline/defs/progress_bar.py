"""A terminal progress bar drawn from a run's progress events (:mod:`vidintel_pipeline.defs.progress`)."""

from __future__ import annotations

import sys
import threading
from typing import Any

PHASE_WEIGHTS = {  # share of the progress bar each phase fills; Dagster may run phases in any order
    "initializing": 5,
    "chunking": 10,
    "analyzing_temporal": 45,
    "transcribing_audio": 30,
    "building_memory": 5,
    "finalizing": 5,
}


class ProgressBar:
    def __init__(self, stream=sys.stderr, width: int = 30):
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self.shown: set[str] = set()
        self.done: dict[str, float] = {}
        self.pct = 0.0
        self.lock = threading.Lock()  # steps report from their own threads (runtime/threaded.py)

    def __call__(self, event: dict[str, Any]) -> None:
        with self.lock:
            self._draw(event)

    def _draw(self, event: dict[str, Any]) -> None:
        phase = event["current_phase"]
        self.done[phase] = max(self.done.get(phase, 0.0), event["phase_progress"] / 100.0)
        self.pct = sum(PHASE_WEIGHTS.get(p, 0) * f for p, f in self.done.items())
        filled = int(self.width * self.pct / 100)
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.pct:5.1f}%  {phase}"
        if self.tty:
            self.stream.write("\r" + line.ljust(70))
            self.stream.flush()
        elif phase not in self.shown:  # a log, not a terminal: a line as each phase starts, however they interleave
            self.shown.add(phase)
            self.stream.write(line + "\n")

    def close(self, success: bool = True) -> None:
        """End the bar: at 100 % when the run succeeded (phases a cached or empty step skips count as done)."""
        if success:
            self.pct = 100.0
            line = f"[{'#' * self.width}] 100.0%  done"
            self.stream.write(("\r" + line.ljust(70) + "\n") if self.tty else line + "\n")
        elif self.tty:
            self.stream.write("\n")
