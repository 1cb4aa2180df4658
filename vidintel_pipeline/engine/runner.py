"""Run the selected plugins over one video: one shared decode, everything else concurrently.

* Frame plugins (and the keyframe selector) ride on one decode of the whole source: one pass, or, for a
  long video on several CPUs, time segments decoded in parallel processes (:mod:`.segments`).
* Other temporal plugins run per chunk, honouring their ``max_chunk_duration``, concurrently under asyncio,
  at most ``max_concurrency`` requests at a time per provider.
* Each request gets a timeout; retryable errors (throttling, timeouts) are retried with exponential
  backoff and jitter; a plugin that still fails hands over to its fallback chain. What ran, what failed
  and why is kept in :class:`PluginRun` records, which end up in the materialization metadata.
* Results are cached per plugin and chunk (see :mod:`vidintel_pipeline.engine.cache`), validated, and merged:
  overlapping markers of the same type and label, across plugins and across chunk boundaries, become one
  marker that remembers every plugin that found it.
"""

from __future__ import annotations

import asyncio
import math
import concurrent.futures
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional

from vidintel_pipeline.engine.cache import ResultCache, cache_key
from vidintel_pipeline.plugin_api.contracts import (
    MARKER_TYPES, AnalysisConfig, BaseTemporalPlugin, BaseTranscriptionPlugin, ChunkInfo, PluginError, TemporalMarker,
    TranscriptionConfig, TranscriptionResult,
)
from vidintel_pipeline.plugin_api.frame_plugin import FramePlugin
from vidintel_pipeline.engine.keyframes import KeyframeSelector
from vidintel_pipeline.media.frames import DecodeStats, run_frame_pipeline
from vidintel_pipeline.engine.segments import Guarded, analyze_segments, decode_workers, margin_for, min_segment_s, plan_segments

MERGE_TOLERANCE_S = 0.05
CLAMP_SLACK_S = 0.5  # a marker this far outside its chunk is clamped into it, further out it is dropped
MAX_RUN_WARNINGS = 10  # reasons kept per plugin run (the counts are always complete)


@dataclass
class RunPolicy:
    timeout_s: float = 1800.0
    max_retries: int = 2
    retry_base_delay_s: float = 1.0
    fallbacks: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class PluginRun:
    plugin: str
    version: str
    status: str = "ok"                 # ok | failed
    markers: int = 0
    seconds: float = 0.0
    cost_usd: float = 0.0
    cached: bool = False
    attempts: int = 0
    requests: int = 0
    error: Optional[str] = None
    retryable: Optional[bool] = None   # set on failure: may trying again later succeed (throttling, timeouts)?
    fallback_for: Optional[str] = None
    clamped: int = 0                   # markers moved into [chunk start, chunk end] (see _checked)
    dropped: int = 0                   # markers dropped alone: malformed or far outside the chunk
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v != []}


@dataclass
class AnalysisResult:
    markers: list[TemporalMarker] = field(default_factory=list)
    runs: list[PluginRun] = field(default_factory=list)
    frames_decoded: int = 0
    decode_seconds: float = 0.0
    decode_segments: int = 0           # 1: one pass; more: parallel time segments
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
    chunks: list[ChunkInfo],
    plugins: list[BaseTemporalPlugin],
    config: AnalysisConfig,
    keyframes: Optional[KeyframeSelector] = None,
    on_progress: Optional[Callable[[float, str], None]] = None,
    policy: Optional[RunPolicy] = None,
    cache: Optional[ResultCache] = None,
    content_sha256: Optional[str] = None,
    make_plugin: Optional[PluginFactory] = None,
) -> AnalysisResult:
    """Analyse one video. ``source`` spans the whole video; ``chunks`` cover it for chunked plugins."""
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
                _fail(run, exc)
                ctx.add(run, [])
                ctx.fallback_sync(p)
    if pending_frame or keyframes is not None:
        t0 = time.perf_counter()
        outcome, result.frames_decoded, result.decode_segments = run_frame_plugins(
            source, [p for p, _ in pending_frame], config, keyframes=keyframes,
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
            markers = _checked(got, source, run.plugin, run, set(p.info.supported_events))
            _unusable(run, len(markers))
            run.cost_usd = p.estimate_cost(duration)
            ctx.store(p, source, markers)
            ctx.add(run, markers)
        except Exception as exc:
            _fail(run, exc)
            ctx.add(run, [])
            ctx.fallback_sync(p)
        run.seconds = round(result.decode_seconds + time.perf_counter() - t1, 3)

    # 2. everything else, concurrently -------------------------------------------------------------------
    others = [p for p in plugins if not isinstance(p, FramePlugin)]
    if others:
        run_async(_gather(ctx.run_with_fallbacks(p) for p in others))

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
        out = analyze_segments(source, plugins, config, segments, keyframes=keyframes, workers=workers, on_progress=on_progress)
        if keyframes is not None:
            keyframes.candidates = out.candidates
        if stats is not None:
            stats.add(out.decode)
        outcome: dict[str, Any] = {
            p.name: PluginError(out.errors[p.name], plugin=p.name) if p.name in out.errors
            else merge_markers(out.markers[p.name])  # a marker across a segment edge comes in two pieces
            for p in plugins
        }
        return outcome, out.frames, len(segments)
    guarded = [Guarded(p) for p in plugins]
    frames = run_frame_pipeline(source.path, [*guarded, *([keyframes] if keyframes is not None else [])],
                                time_offset=source.start_s, on_progress=on_progress, stats=stats)
    outcome = {}
    for g in guarded:
        try:
            outcome[g.plugin.name] = g.error if g.error is not None else g.plugin.end()
        except Exception as exc:
            outcome[g.plugin.name] = exc
    return outcome, frames, 1


def estimate_run_cost(
    *, source: ChunkInfo, chunks: list[ChunkInfo], plugins: list[BaseTemporalPlugin], config: AnalysisConfig,
    cache: Optional[ResultCache] = None, content_sha256: Optional[str] = None,
) -> dict[str, float]:
    """USD each plugin would spend on this video now: one request per chunk it needs, $0 where cached."""
    ctx = _Ctx(AnalysisResult(), RunPolicy(), config, source, chunks, cache, content_sha256, None)
    return {p.name: 0.0 if ctx.is_cached(p) else round(sum(p.estimate_cost(c.duration_s) for c in ctx.targets(p)), 6)
            for p in plugins}


def cached_plugins(
    *, source: ChunkInfo, chunks: list[ChunkInfo], plugins: list[BaseTemporalPlugin], config: AnalysisConfig,
    cache: Optional[ResultCache] = None, content_sha256: Optional[str] = None,
) -> set[str]:
    """Names of the plugins whose results for this video are all in the cache."""
    ctx = _Ctx(AnalysisResult(), RunPolicy(), config, source, chunks, cache, content_sha256, None)
    return {p.name for p in plugins if ctx.is_cached(p)}


async def _gather(coros) -> None:
    await asyncio.gather(*coros)


class _Ctx:
    def __init__(self, result, policy, config, source, chunks, cache, content_sha256, make_plugin):
        self.result: AnalysisResult = result
        self.policy: RunPolicy = policy
        self.config = config
        self.source: ChunkInfo = source
        self.chunks: list[ChunkInfo] = chunks
        self.cache: Optional[ResultCache] = cache if content_sha256 else None
        self.sha = content_sha256
        self.make_plugin = make_plugin
        self.semaphores: dict[str, asyncio.Semaphore] = {}

    def targets(self, p: BaseTemporalPlugin) -> list[ChunkInfo]:
        limit = p.info.max_chunk_duration
        return [self.source] if limit is None or self.source.duration_s <= limit + 1e-6 else self.chunks

    def add(self, run: PluginRun, markers: list[TemporalMarker]) -> None:
        self.result.runs.append(run)
        self.result.markers.extend(markers)

    # cache --------------------------------------------------------------------------------------------
    def _key(self, p: BaseTemporalPlugin, c: ChunkInfo) -> str:
        return cache_key(content_sha256=self.sha, plugin=p, config=self.config, span=(c.start_s, c.end_s))

    def is_cached(self, p: BaseTemporalPlugin) -> bool:
        return self.cache is not None and all(self.cache.get(p.name, self._key(p, c)) is not None for c in self.targets(p))

    def from_cache(self, p: BaseTemporalPlugin, targets: list[ChunkInfo]) -> bool:
        if self.cache is None:
            return False
        hits = [self.cache.get(p.name, self._key(p, c)) for c in targets]
        if any(h is None for h in hits):
            return False
        markers = [TemporalMarker.model_validate(m) for h in hits for m in h]
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
            return _checked(out, c, p.name, run, set(p.info.supported_events))

        try:
            outs = await asyncio.gather(*(one(c) for c in targets))
            run.cost_usd = round(sum(p.estimate_cost(c.duration_s) for c in targets), 6)
            markers = [m for o in outs for m in o]
            _unusable(run, len(markers))
            for c, o in zip(targets, outs):  # cached only once the whole result stands
                self.store(p, c, o)
        except Exception as exc:
            _fail(run, exc)
            markers = []
        run.requests = len(targets)
        run.seconds = round(time.perf_counter() - t0, 3)
        self.add(run, markers)
        return run


async def call_with_policy(call: Callable[[], Awaitable[Any]], policy: RunPolicy, name: str, run: PluginRun) -> Any:
    """Await ``call()`` with a timeout; retry retryable failures with exponential backoff and jitter."""
    for attempt in range(policy.max_retries + 1):
        run.attempts += 1
        try:
            return await asyncio.wait_for(call(), timeout=policy.timeout_s)
        except asyncio.TimeoutError:
            err: PluginError = PluginError(f"timed out after {policy.timeout_s:g} s", plugin=name, retryable=True)
        except PluginError as exc:
            err = exc
        except Exception as exc:  # a plugin bug: not worth retrying, but never lost
            raise PluginError(f"{type(exc).__name__}: {exc}", plugin=name) from exc
        if not err.retryable or attempt == policy.max_retries:
            raise err
        delay = policy.retry_base_delay_s * (2 ** attempt)
        await asyncio.sleep(delay + random.uniform(0, delay))
    raise AssertionError("unreachable")


def transcribe_with_fallbacks(
    plugins: list[BaseTranscriptionPlugin], audio_path: str, config: TranscriptionConfig, policy: RunPolicy,
) -> tuple[Optional[TranscriptionResult], list[PluginRun], Optional[BaseTranscriptionPlugin]]:
    """The first plugin that succeeds (after retries) wins; every attempt is recorded."""
    runs: list[PluginRun] = []
    for i, p in enumerate(plugins):
        run = PluginRun(p.name, p.info.plugin_version, fallback_for=plugins[0].name if i else None, requests=1)
        runs.append(run)
        t0 = time.perf_counter()
        try:
            result = run_async(call_with_policy(lambda p=p: p.transcribe(audio_path, config), policy, p.name, run))
            run.seconds = round(time.perf_counter() - t0, 3)
            return result, runs, p
        except PluginError as exc:
            _fail(run, exc)
            run.seconds = round(time.perf_counter() - t0, 3)
    return None, runs, None


def _checked(markers: Any, chunk: ChunkInfo, plugin: str, run: Optional[PluginRun] = None,
             declared: Optional[set[str]] = None) -> list[TemporalMarker]:
    """Validate a plugin's output marker by marker: one bad value never costs the plugin its whole result.

    A marker that spills over the chunk by at most ``CLAMP_SLACK_S`` is clamped into it (a detector that puts a
    run's start half a frame before 0 is measured, not hypothetical); one that is malformed or lies further out is
    dropped alone. Both are counted on ``run`` (``clamped``/``dropped``) with the first reasons in its warnings.
    Output that is not a list raises here; every marker dropped fails the plugin too (see :func:`_unusable`).
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
                raise ValueError(f"{data.get('label', '?')}@{start:.3f}-{end:.3f}s lies outside "
                                 f"{chunk.start_s:.3f}-{chunk.end_s:.3f}s")
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


def _unusable(run: PluginRun, kept: int) -> None:
    """Every marker a plugin returned was dropped: that is a failed plugin, not an empty result."""
    if run.dropped and not kept:
        raise PluginError(f"every one of its {run.dropped} markers was malformed or out of range "
                          f"({run.warnings[0] if run.warnings else 'no reason'})", plugin=run.plugin)


def _fail(run: PluginRun, exc: BaseException) -> None:
    run.status = "failed"
    run.error = f"{type(exc).__name__}: {exc}"
    run.retryable = bool(getattr(exc, "retryable", False))


class _DaemonThreads(concurrent.futures.ThreadPoolExecutor):  # asyncio accepts only this type as default executor
    """Each call on its own daemon thread. A plugin stuck in a blocking call after its timeout is abandoned:
    it cannot hold the step, or the process's exit, hostage the way a joined thread pool would."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def work() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                fut.set_exception(exc)

        threading.Thread(target=work, daemon=True, name="vidintel-plugin-call").start()
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


def run_async(coro: Awaitable[Any]) -> Any:
    """``asyncio.run`` for plugin calls, except that threads left blocked by timed-out plugins are not waited for."""
    with asyncio.Runner() as runner:
        runner.get_loop().set_default_executor(_DaemonThreads())
        return runner.run(coro)


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
