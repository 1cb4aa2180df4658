"""Plugin output made safe and merged: markers checked against their chunk (clamped a little, else dropped, one
bad marker never failing the rest), then overlapping markers of one type and label, across plugins and chunk
boundaries, merged into one that remembers every plugin that found it."""

from __future__ import annotations

import math
from typing import Any, Optional

from vidintel_pipeline.engine.policy import MAX_RUN_WARNINGS, PluginRun
from vidintel_pipeline.plugin_api.contracts import (
    MARKER_TYPES,
    ChunkInfo,
    PluginError,
    TemporalMarker,
)

MERGE_TOLERANCE_S = 0.05


CLAMP_SLACK_S = 0.5  # a marker this far outside its chunk is clamped into it, further out it is dropped


def check_markers(
    markers: Any, chunk: ChunkInfo, plugin: str, run: Optional[PluginRun] = None, declared: Optional[set[str]] = None
) -> list[TemporalMarker]:
    """Validate a plugin's output marker by marker: one bad value never costs the plugin its whole result.

    A marker that spills over the chunk by at most ``CLAMP_SLACK_S`` is clamped into it (a detector that puts a
    run's start half a frame before 0 is measured, not hypothetical); one that is malformed or lies further out is
    dropped alone. Both are counted on ``run`` (``clamped``/``dropped``) with the first reasons in its warnings.
    Output that is not a list raises here; every marker dropped fails the plugin too (see :func:`mark_unusable`).
    """
    if markers is None:
        return []
    if isinstance(markers, (str, bytes, dict, TemporalMarker)) or not hasattr(markers, "__iter__"):
        raise PluginError(f"returned {type(markers).__name__}, not a list of markers", plugin=plugin)
    markers = list(markers)  # a generator or any other iterable of markers is fine
    out: list[TemporalMarker] = []
    clamped = dropped = 0
    reasons: list[str] = []
    for raw in markers:
        try:
            data = raw.model_dump() if isinstance(raw, TemporalMarker) else dict(raw)
            start, end = float(data["start_s"]), float(data["end_s"])
            if not (math.isfinite(start) and math.isfinite(end)):
                raise ValueError(f"non-finite time {start}-{end}")
            lo, hi = chunk.start_s - CLAMP_SLACK_S, chunk.end_s + CLAMP_SLACK_S
            if start < lo or end > hi:
                raise ValueError(
                    f"{data.get('label', '?')}@{start:.3f}-{end:.3f}s lies outside "
                    f"{chunk.start_s:.3f}-{chunk.end_s:.3f}s"
                )
            if end < start:
                raise ValueError(f"{data.get('label', '?')}: end_s {end:.3f} precedes start_s {start:.3f}")
            s2, e2 = min(max(start, chunk.start_s), chunk.end_s), min(max(end, chunk.start_s), chunk.end_s)
            if (s2, e2) != (start, end):
                clamped += 1
            data["start_s"], data["end_s"] = s2, max(s2, e2)
            m = TemporalMarker.model_validate(data)
            if declared is not None and m.type not in MARKER_TYPES and m.type not in declared:
                raise ValueError(f"type {m.type!r} is neither a core marker type nor in {plugin}'s supported_events")
            out.append(m)
        except Exception as exc:
            dropped += 1
            if len(reasons) < 3 and (run is None or len(run.warnings) + len(reasons) < MAX_RUN_WARNINGS):
                reasons.append(f"dropped a marker: {exc}".splitlines()[0][:200])
    if run is not None:
        run.clamped += clamped
        run.dropped += dropped
        run.warnings.extend(reasons)
    return out


def mark_unusable(run: PluginRun, kept: int) -> None:
    """Every marker a plugin returned was dropped: that is a failed plugin, not an empty result."""
    if run.dropped and not kept:
        raise PluginError(
            f"every one of its {run.dropped} markers was malformed or out of range "
            f"({run.warnings[0] if run.warnings else 'no reason'})",
            plugin=run.plugin,
        )


def merge_markers(markers: list[TemporalMarker], tolerance: float = MERGE_TOLERANCE_S) -> list[TemporalMarker]:
    """One marker per event: same type and label, overlapping or touching (within ``tolerance``).

    Events split at a chunk boundary join up again; the same event found by several plugins is kept once,
    with the most confident plugin's fields and ``attributes.plugins`` naming all that found it.
    """
    groups: dict[tuple[str, str], list[TemporalMarker]] = {}
    for m in markers:
        groups.setdefault((m.type, m.label), []).append(m)
    out: list[TemporalMarker] = []
    for items in groups.values():
        items.sort(key=lambda m: (m.start_s, m.end_s))
        cur: Optional[TemporalMarker] = None
        found: set[str] = set()
        for m in items:
            if cur is not None and m.start_s <= cur.end_s + tolerance:
                best = m if m.confidence > cur.confidence else cur
                merged = best.model_copy(deep=True)
                merged.start_s, merged.end_s = min(cur.start_s, m.start_s), max(cur.end_s, m.end_s)
                if best.start_s == best.end_s and cur.start_s == cur.end_s and m.start_s == m.end_s:
                    merged.start_s = merged.end_s = best.start_s  # instantaneous events stay instantaneous
                found.add(m.plugin)
                cur = merged
            else:
                if cur is not None:
                    out.append(_with_plugins(cur, found))
                cur, found = m.model_copy(deep=True), {m.plugin}
        if cur is not None:
            out.append(_with_plugins(cur, found))
    out.sort(key=lambda m: (m.start_s, m.end_s, m.type, m.label))
    return out


def _with_plugins(m: TemporalMarker, found: set[str]) -> TemporalMarker:
    if len(found) > 1:
        m.attributes = {**m.attributes, "plugins": sorted(found)}
    return m
