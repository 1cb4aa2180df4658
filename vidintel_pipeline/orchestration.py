"""Run the selected plugins over one video: one shared decode, everything else concurrently.

Frame plugins (and the keyframe selector) ride on one decode of the whole source. Other temporal plugins
run per chunk, honouring their ``max_chunk_duration``, concurrently under asyncio. A failing plugin does
not sink the others: its error is collected into the per-plugin report, which ends up in the
materialization metadata. Markers are validated before they are kept, sorted and de-duplicated.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .contracts import AnalysisConfig, BaseTemporalPlugin, ChunkInfo, PluginError, TemporalMarker
from .frame_plugins import FramePlugin
from .keyframes import KeyframeSelector
from .media.frames import run_frame_pipeline


@dataclass
class PluginRun:
    plugin: str
    version: str
    status: str = "ok"          # ok | failed
    markers: int = 0
    seconds: float = 0.0
    cost_usd: float = 0.0
    error: Optional[str] = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class AnalysisResult:
    markers: list[TemporalMarker] = field(default_factory=list)
    runs: list[PluginRun] = field(default_factory=list)
    frames_decoded: int = 0
    decode_seconds: float = 0.0

    @property
    def cost_by_plugin(self) -> dict[str, float]:
        return {r.plugin: r.cost_usd for r in self.runs}

    @property
    def failed(self) -> list[PluginRun]:
        return [r for r in self.runs if r.status != "ok"]


def analyze_video(
    *,
    source: ChunkInfo,
    chunks: list[ChunkInfo],
    plugins: list[BaseTemporalPlugin],
    config: AnalysisConfig,
    keyframes: Optional[KeyframeSelector] = None,
    on_progress: Optional[Callable[[float, str], None]] = None,
) -> AnalysisResult:
    """Analyse one video. ``source`` spans the whole video; ``chunks`` cover it for chunked plugins."""
    result = AnalysisResult()
    frame_plugins = [p for p in plugins if isinstance(p, FramePlugin)]
    other = [p for p in plugins if not isinstance(p, FramePlugin)]
    duration = source.duration_s

    # 1. the shared decode ----------------------------------------------------------------------------
    consumers: list[Any] = []
    frame_runs: dict[int, PluginRun] = {}
    for p in frame_plugins:
        run = PluginRun(p.name, p.info.plugin_version)
        try:
            p.begin(source, config)
            consumers.append(p)
        except Exception as exc:
            _fail(run, exc)
        frame_runs[id(p)] = run
        result.runs.append(run)
    if keyframes is not None:
        consumers.append(keyframes)
    if consumers:
        t0 = time.perf_counter()
        result.frames_decoded = run_frame_pipeline(
            source.path, consumers, time_offset=source.start_s,
            on_progress=(lambda t: on_progress(100.0 * t / max(duration, 1e-6), "decode")) if on_progress else None,
        )
        result.decode_seconds = time.perf_counter() - t0
        for p in frame_plugins:
            run = frame_runs[id(p)]
            if run.status != "ok":
                continue
            t1 = time.perf_counter()
            try:
                result.markers.extend(_checked(p, p.end(), source, run))
            except Exception as exc:
                _fail(run, exc)
            run.seconds = round(result.decode_seconds + time.perf_counter() - t1, 3)
            run.cost_usd = p.estimate_cost(duration)

    # 2. everything else, concurrently -------------------------------------------------------------------
    async def run_other(p: BaseTemporalPlugin) -> None:
        run = PluginRun(p.name, p.info.plugin_version)
        result.runs.append(run)
        limit = p.info.max_chunk_duration
        targets = [source] if limit is None or duration <= limit + 1e-6 else chunks
        t0 = time.perf_counter()
        try:
            outs = await asyncio.gather(*(p.detect_markers(c, config) for c in targets))
            for c, markers in zip(targets, outs):
                result.markers.extend(_checked(p, markers, c, run))
            run.cost_usd = p.estimate_cost(duration)
        except Exception as exc:
            _fail(run, exc)
        run.seconds = round(time.perf_counter() - t0, 3)

    async def run_all() -> None:
        await asyncio.gather(*(run_other(p) for p in other))

    if other:
        asyncio.run(run_all())

    kept = [m for m in result.markers if m.confidence >= config.min_confidence]
    result.markers = sorted(_dedupe(kept), key=lambda m: (m.start_s, m.end_s, m.type, m.label))
    for run in result.runs:
        run.markers = sum(1 for m in result.markers if m.plugin == run.plugin)
    return result


def _checked(plugin: BaseTemporalPlugin, markers: Any, chunk: ChunkInfo, run: PluginRun) -> list[TemporalMarker]:
    """Validate a plugin's output: right types, inside the chunk (with one frame of slack)."""
    out = []
    slack = 0.1
    for m in markers or []:
        m = m if isinstance(m, TemporalMarker) else TemporalMarker.model_validate(m)
        if m.start_s < chunk.start_s - slack or m.end_s > chunk.end_s + slack:
            raise PluginError(
                f"marker {m.label}@{m.start_s:.3f}-{m.end_s:.3f}s lies outside chunk "
                f"{chunk.start_s:.3f}-{chunk.end_s:.3f}s", plugin=run.plugin,
            )
        m.end_s = min(m.end_s, chunk.end_s)
        m.start_s = min(m.start_s, m.end_s)
        out.append(m)
    return out


def _fail(run: PluginRun, exc: BaseException) -> None:
    run.status = "failed"
    run.error = f"{type(exc).__name__}: {exc}"


def _dedupe(markers: list[TemporalMarker]) -> list[TemporalMarker]:
    """Drop exact repeats (same type, label, times, plugin): chunk overlaps can report one event twice."""
    seen: set[tuple] = set()
    out = []
    for m in markers:
        key = (m.type, m.label, round(m.start_s, 3), round(m.end_s, 3), m.plugin)
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out
