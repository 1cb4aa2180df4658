"""Run the selected plugins over one video: one shared decode, everything else concurrently.

* Frame plugins (and the keyframe selector) ride on one decode of the whole source: one pass, or, for a
  long video on several CPUs, time segments decoded in parallel processes (:mod:`vidintel_pipeline.engine.segments`).
* Other temporal plugins run per chunk, honouring their ``max_chunk_duration``: each gets the chunk set cut for
  its own limit (providers bill per request, so chunks shorter than a plugin needs cost more), concurrently under
  asyncio, at most ``max_concurrency`` requests at a time per provider, under the retry policy of
  :mod:`vidintel_pipeline.engine.policy`; a plugin that still fails hands over to its fallback chain.
* Results are cached per plugin and chunk (:mod:`vidintel_pipeline.engine.cache`), then checked and merged
  (:mod:`vidintel_pipeline.engine.merge`).
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence

from vidintel_pipeline.engine.cache import ResultCache, cache_key
from vidintel_pipeline.engine.keyframes import KeyframeSelector
from vidintel_pipeline.engine.merge import check_markers, mark_unusable, merge_markers
from vidintel_pipeline.engine.policy import (
    PluginRun,
    RunPolicy,
    call_with_policy,
    gather_all,
    record_failure,
    run_async,
)
from vidintel_pipeline.engine.segments import (
    Guarded,
    analyze_segments,
    decode_workers,
    margin_for,
    min_segment_s,
    plan_segments,
)
from vidintel_pipeline.media.decode import DecodeStats, run_frame_pipeline
from vidintel_pipeline.plugin_api.contracts import (
    AnalysisConfig,
    BaseTemporalPlugin,
    BaseTranscriptionPlugin,
    ChunkInfo,
    PluginError,
    TemporalMarker,
    TranscriptionConfig,
    TranscriptionResult,
)
from vidintel_pipeline.plugin_api.frame_plugin import FramePlugin

# one chunk list for every chunked plugin, or chunk sets keyed by the max_chunk_s each was cut for
Chunks = list[ChunkInfo] | dict[float, list[ChunkInfo]]


def chunk_set_for(limits: Iterable[float], limit: float) -> float:
    """Which chunk set a plugin limited to ``limit`` seconds reads: the one cut for the longest limit not above its
    own (its own, when video_chunks cut one for it); the shortest if none fits."""
    keys = list(limits)
    fitting = [k for k in keys if k <= limit + 1e-6]
    return max(fitting) if fitting else min(keys)


def chunks_for(chunks: Chunks, limit: float) -> list[ChunkInfo]:
    """The chunks a plugin limited to ``limit`` seconds gets (:func:`chunk_set_for`)."""
    if isinstance(chunks, list):
        return chunks
    return chunks[chunk_set_for(chunks, limit)] if chunks else []


@dataclass
class AnalysisResult:
    markers: list[TemporalMarker] = field(default_factory=list)
    runs: list[PluginRun] = field(default_factory=list)
    frames_decoded: int = 0
    decode_seconds: float = 0.0
    decode_segments: int = 0  # 1: one pass; more: parallel time segments
    decode: DecodeStats = field(default_factory=DecodeStats)  # packets refused, frames flagged corrupt

    @property
    def cost_by_plugin(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in self.runs:
            out[r.plugin] = round(out.get(r.plugin, 0.0) + r.cost_usd, 6)
        return out

    @property
    def failed(self) -> list[PluginRun]:
        return [r for r in self.runs if r.status != "ok"]


PluginFactory = Callable[[str], BaseTemporalPlugin]


def analyze_video(
    *,
    source: ChunkInfo,
    chunks: Chunks,
    plugins: list[BaseTemporalPlugin],
    config: AnalysisConfig,
    keyframes: Optional[KeyframeSelector] = None,
    on_progress: Optional[Callable[[float, str], None]] = None,
    policy: Optional[RunPolicy] = None,
    cache: Optional[ResultCache] = None,
    content_sha256: Optional[str] = None,
    make_plugin: Optional[PluginFactory] = None,
) -> AnalysisResult:
    """Analyse one video. ``source`` spans the whole video; ``chunks`` cover it for chunked plugins: one list for
    every plugin, or sets keyed by the ``max_chunk_s`` they were cut for (see :func:`chunks_for`)."""
    policy = policy or RunPolicy()
    result = AnalysisResult()
    ctx = _Ctx(result, policy, config, source, chunks, cache, content_sha256, make_plugin)
    duration = source.duration_s

    # 1. cache hits, then the shared decode for the frame plugins that missed ---------------------------
    pending_frame: list[tuple[FramePlugin, PluginRun]] = []
    for p in plugins:
        if isinstance(p, FramePlugin) and not ctx.from_cache(p, [source]):
            run = PluginRun(p.name, p.info.plugin_version)
            try:
                p.begin(source, config)
                pending_frame.append((p, run))
            except Exception as exc:
                record_failure(run, exc)
                ctx.add(run, [])
                ctx.fallback_sync(p)
    if pending_frame or keyframes is not None:
        t0 = time.perf_counter()
        outcome, result.frames_decoded, result.decode_segments = run_frame_plugins(
            source,
            [p for p, _ in pending_frame],
            config,
            keyframes=keyframes,
            on_progress=(lambda t: on_progress(100.0 * t / max(duration, 1e-6), "decode")) if on_progress else None,
            stats=result.decode,
        )
        result.decode_seconds = time.perf_counter() - t0
    for p, run in pending_frame:
        t1 = time.perf_counter()
        run.attempts = run.requests = 1
        try:
            got = outcome[p.name]
            if isinstance(got, BaseException):
                raise got
            markers = check_markers(got, source, run.plugin, run, set(p.info.supported_events))
            mark_unusable(run, len(markers))
            run.cost_usd = p.estimate_cost(duration)
            ctx.store(p, source, markers)
            ctx.add(run, markers)
        except Exception as exc:
            record_failure(run, exc)
            ctx.add(run, [])
            ctx.fallback_sync(p)
        run.seconds = round(result.decode_seconds + time.perf_counter() - t1, 3)

    # 2. everything else, concurrently -------------------------------------------------------------------
    others = [p for p in plugins if not isinstance(p, FramePlugin)]
    if others:
        run_async(gather_all(ctx.run_with_fallbacks(p) for p in others))

    kept = [m for m in result.markers if m.confidence >= config.min_confidence]
    result.markers = merge_markers(kept)
    for run in result.runs:
        run.markers = sum(1 for m in result.markers if run.plugin in m.attributes.get("plugins", [m.plugin]))
    return result


def run_frame_plugins(
    source: ChunkInfo,
    plugins: list[FramePlugin],
    config: AnalysisConfig,
    *,
    keyframes: Optional[KeyframeSelector] = None,
    on_progress: Optional[Callable[[float], None]] = None,
    stats: Optional[DecodeStats] = None,
) -> tuple[dict[str, Any], int, int]:
    """Feed every frame of ``source`` to the begun ``plugins`` and the keyframe selector: in parallel time
    segments when the video is long and the plugins allow it (:mod:`.segments`), else in one pass.

    Returns ({plugin name: its markers, or the exception it raised}, frames decoded, segments). A plugin that raises
    is left out from then on; the others and the decode go on. Decoding errors raise :class:`MediaError`.
    """
    workers = decode_workers()
    margin = margin_for(plugins)
    segments = plan_segments(source.duration_s, workers, margin, min_segment_s()) if margin is not None else []
    if len(segments) > 1:
        out = analyze_segments(
            source, plugins, config, segments, keyframes=keyframes, workers=workers, on_progress=on_progress
        )
        if keyframes is not None:
            keyframes.candidates = out.candidates
        if stats is not None:
            stats.add(out.decode)
        outcome: dict[str, Any] = {
            p.name: PluginError(out.errors[p.name], plugin=p.name)
            if p.name in out.errors
            else merge_markers(out.markers[p.name])  # a marker across a segment edge comes in two pieces
            for p in plugins
        }
        return outcome, out.frames, len(segments)
    guarded = [Guarded(p) for p in plugins]
    frames = run_frame_pipeline(
        source.path,
        [*guarded, *([keyframes] if keyframes is not None else [])],
        time_offset=source.start_s,
        on_progress=on_progress,
        stats=stats,
    )
    outcome = {}
    for g in guarded:
        try:
            outcome[g.plugin.name] = g.error if g.error is not None else g.plugin.end()
        except Exception as exc:
            outcome[g.plugin.name] = exc
    return outcome, frames, 1


def estimate_run_cost(
    *,
    source: ChunkInfo,
    chunks: Chunks,
    plugins: list[BaseTemporalPlugin],
    config: AnalysisConfig,
    cache: Optional[ResultCache] = None,
    content_sha256: Optional[str] = None,
) -> dict[str, float]:
    """USD each plugin would spend on this video now: one request per chunk it needs, $0 where cached."""
    ctx = _Ctx(AnalysisResult(), RunPolicy(), config, source, chunks, cache, content_sha256, None)
    return {
        p.name: 0.0 if ctx.is_cached(p) else round(sum(p.estimate_cost(c.duration_s) for c in ctx.targets(p)), 6)
        for p in plugins
    }


def cached_plugins(
    *,
    source: ChunkInfo,
    chunks: Chunks,
    plugins: Sequence[BaseTemporalPlugin],
    config: AnalysisConfig,
    cache: Optional[ResultCache] = None,
    content_sha256: Optional[str] = None,
) -> set[str]:
    """Names of the plugins whose results for this video are all in the cache."""
    ctx = _Ctx(AnalysisResult(), RunPolicy(), config, source, chunks, cache, content_sha256, None)
    return {p.name for p in plugins if ctx.is_cached(p)}


class _Ctx:
    def __init__(self, result, policy, config, source, chunks, cache, content_sha256, make_plugin):
        self.result: AnalysisResult = result
        self.policy: RunPolicy = policy
        self.config = config
        self.source: ChunkInfo = source
        self.chunks: Chunks = chunks
        self.cache: Optional[ResultCache] = cache if content_sha256 else None
        self.sha = content_sha256
        self.make_plugin = make_plugin
        self.semaphores: dict[str, asyncio.Semaphore] = {}

    def targets(self, p: BaseTemporalPlugin) -> list[ChunkInfo]:
        limit = p.info.max_chunk_duration
        if limit is None or self.source.duration_s <= limit + 1e-6:
            return [self.source]
        return chunks_for(self.chunks, limit)

    def add(self, run: PluginRun, markers: list[TemporalMarker]) -> None:
        self.result.runs.append(run)
        self.result.markers.extend(markers)

    # cache --------------------------------------------------------------------------------------------
    def _key(self, p: BaseTemporalPlugin, c: ChunkInfo) -> str:
        return cache_key(content_sha256=self.sha, plugin=p, config=self.config, span=(c.start_s, c.end_s))

    def is_cached(self, p: BaseTemporalPlugin) -> bool:
        return self.cache is not None and all(
            self.cache.get(p.name, self._key(p, c)) is not None for c in self.targets(p)
        )

    def from_cache(self, p: BaseTemporalPlugin, targets: list[ChunkInfo]) -> bool:
        if self.cache is None:
            return False
        hits = [self.cache.get(p.name, self._key(p, c)) for c in targets]
        found = [h for h in hits if h is not None]
        if len(found) < len(hits):
            return False
        markers = [TemporalMarker.model_validate(m) for h in found for m in h]
        self.add(PluginRun(p.name, p.info.plugin_version, cached=True), markers)
        return True

    def store(self, p: BaseTemporalPlugin, c: ChunkInfo, markers: list[TemporalMarker]) -> None:
        if self.cache is not None:
            self.cache.put(p.name, self._key(p, c), [m.model_dump(mode="json") for m in markers])

    # fallbacks ----------------------------------------------------------------------------------------
    def _fallbacks_of(self, name: str) -> list[BaseTemporalPlugin]:
        out = []
        for fb in self.policy.fallbacks.get(name, []):
            if self.make_plugin is None:
                raise PluginError(f"fallback {fb!r} configured but no plugin factory given")
            out.append(self.make_plugin(fb))
        return out

    def fallback_sync(self, failed: BaseTemporalPlugin) -> None:
        if self.policy.fallbacks.get(failed.name):
            run_async(self._fallback(failed.name))

    async def _fallback(self, failed_name: str) -> None:
        for fb in self._fallbacks_of(failed_name):
            run = await self.run_once(fb, fallback_for=failed_name)
            if run.status == "ok":
                return

    async def run_with_fallbacks(self, p: BaseTemporalPlugin) -> None:
        run = await self.run_once(p)
        if run.status != "ok":
            await self._fallback(p.name)

    # one plugin over its chunks, with timeout, retries and concurrency limit ------------------------
    async def run_once(self, p: BaseTemporalPlugin, fallback_for: Optional[str] = None) -> PluginRun:
        targets = self.targets(p)
        if self.from_cache(p, targets):
            run = self.result.runs[-1]
            run.fallback_for = fallback_for
            return run
        run = PluginRun(p.name, p.info.plugin_version, fallback_for=fallback_for)
        sem = self.semaphores.setdefault(p.name, asyncio.Semaphore(p.info.max_concurrency))
        t0 = time.perf_counter()

        async def one(c: ChunkInfo) -> list[TemporalMarker]:
            async with sem:
                out = await call_with_policy(lambda: p.detect_markers(c, self.config), self.policy, p.name, run)
            return check_markers(out, c, p.name, run, set(p.info.supported_events))

        try:
            outs = await asyncio.gather(*(one(c) for c in targets))
            run.cost_usd = round(sum(p.estimate_cost(c.duration_s) for c in targets), 6)
            markers = [m for o in outs for m in o]
            mark_unusable(run, len(markers))
            for c, o in zip(targets, outs, strict=False):  # cached only once the whole result stands
                self.store(p, c, o)
        except Exception as exc:
            record_failure(run, exc)
            markers = []
        run.requests = len(targets)
        run.seconds = round(time.perf_counter() - t0, 3)
        self.add(run, markers)
        return run


def transcribe_with_fallbacks(
    plugins: list[BaseTranscriptionPlugin],
    audio_path: str,
    config: TranscriptionConfig,
    policy: RunPolicy,
) -> tuple[Optional[TranscriptionResult], list[PluginRun], Optional[BaseTranscriptionPlugin]]:
    """The first plugin that succeeds (after retries) wins; every attempt is recorded."""
    runs: list[PluginRun] = []
    for i, p in enumerate(plugins):
        run = PluginRun(p.name, p.info.plugin_version, fallback_for=plugins[0].name if i else None, requests=1)
        runs.append(run)
        t0 = time.perf_counter()
        try:
            result = run_async(
                call_with_policy(functools.partial(p.transcribe, audio_path, config), policy, p.name, run)
            )
            run.seconds = round(time.perf_counter() - t0, 3)
            return result, runs, p
        except PluginError as exc:
            record_failure(run, exc)
            run.seconds = round(time.perf_counter() - t0, 3)
    return None, runs, None
