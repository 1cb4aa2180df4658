"""Progress through the seed's ingestion phases, to the run's event log and to in-process listeners.

A report carries the seed's fields: ``current_phase``, ``phase_progress`` (0-100), ``providers_active`` (a
list) and ``markers_detected``, plus whatever the step adds. In the Dagster run each phase's start and end is an
``AssetObservation`` of the step's asset, with those fields as typed metadata, so the UI shows them on the asset's
timeline; in between, a log line at most every ``LOG_EVERY_S`` per phase and step (every event is a write to the
event log, about 10 ms each here: a 12 s clip's run writes some 80). The ``vidintel`` CLI registers a listener to
draw its progress bar from every report.

The seed lists ``analyzing_temporal`` before ``transcribing_audio``; Dagster runs the two steps side by side
when it can (both need only the audio and chunks), so their reports interleave in whatever order they run.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

from vidintel_pipeline.plugin_api.contracts import IngestionPhase

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


def report(
    context: Optional[Any],
    phase: IngestionPhase,
    progress: float,
    *,
    providers_active: Optional[list[str]] = None,
    markers_detected: Optional[int] = None,
    **info: Any,
) -> None:
    progress = max(0.0, min(100.0, progress))
    event: dict[str, Any] = {"current_phase": phase.value, "phase_progress": round(progress, 1)}
    if providers_active is not None:
        event["providers_active"] = list(providers_active)
    if markers_detected is not None:
        event["markers_detected"] = int(markers_detected)
    event |= info
    if context is not None:
        key, now = (id(context), phase.value), time.monotonic()
        edge = progress in (0.0, 100.0)
        # at a phase's start and end the observation says it all: a log line too would be another event to write
        observed = edge and _observe(context, event)
        if edge or now - _logged.get(key, -LOG_EVERY_S) >= LOG_EVERY_S:
            _logged[key] = now
            if not observed:
                extras = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("current_phase", "phase_progress"))
                context.log.info(f"phase={phase.value} progress={progress:.1f}% {extras}".rstrip())
        if progress == 100.0:
            _logged.pop(key, None)  # the phase is done in this step
    for listener in list(_listeners):
        listener(event)


def _observe(context: Any, event: dict[str, Any]) -> bool:
    """The phase's start or end as an AssetObservation of the step's (first) asset, for this partition; False when
    the context has no asset to observe."""
    import dagster as dg

    try:
        keys = sorted(
            context.selected_asset_keys, key=lambda k: (k.to_user_string() != "temporal_markers", k.to_user_string())
        )
        partition = context.partition_key if context.has_partition_key else None
    except Exception:  # not an asset step (a test's bare context): the log line is enough
        return False
    if not keys:
        return False
    meta: dict[str, Any] = {}
    for k, v in event.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, str, list)):
            continue
        meta[f"progress/{k}"] = (
            dg.MetadataValue.float(float(v))
            if isinstance(v, float)
            else dg.MetadataValue.int(v)
            if isinstance(v, int)
            else dg.MetadataValue.json(v)
            if isinstance(v, list)
            else dg.MetadataValue.text(v)
        )
    context.log_event(dg.AssetObservation(asset_key=keys[0], partition=partition, metadata=meta))
    return True
