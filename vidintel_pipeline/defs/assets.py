"""The per-video asset chain, one Dagster partition per (project, video).

    source_video -> video_chunks ----------\\
         |      \\-> audio -> transcript ------------------> memory -> exports, search_index
         \\-------------> keyframes + temporal_markers (one decode) --/
                               transcript + temporal_markers -> prompt_markers --/

Assets read and write through the storage resource in the seed's layout (no IO manager): each returns a
``MaterializeResult`` whose metadata carries cost (``cost/usd`` and one entry per plugin), seconds of
video processed, plugin names and versions, counts, and the URIs it wrote.
"""


import shutil
import time
from pathlib import Path
from typing import Any, Optional

import cv2  # noqa: F401  (imported early so the OpenCV thread setting in media.frames applies)
import dagster as dg

from vidintel.resources import CostControls, TemporalPluginsResource, TranscriptionResource, VidintelStorage

from vidintel_pipeline.plugin_api.contracts import (
    AnalysisConfig, ChunkInfo, CostSummary, IngestionPhase, Keyframe, MemoryDocument, PluginError, SpeakerTurn,
    TemporalMarker, TranscriptionResult,
)
from vidintel_pipeline.engine.cache import ResultCache, cache_key, file_sha256
from vidintel_pipeline.plugin_api.frame_plugin import FramePlugin
from vidintel_pipeline.engine.keyframes import KeyframeSelector
from vidintel_pipeline.storage.layout import InvalidIdError, VideoRef
from vidintel_pipeline.media import MediaError, probe
from vidintel_pipeline.media.audio import extract_audio
from vidintel_pipeline.media.chunking import cut_chunks, keyframe_times, plan_chunks
from vidintel_pipeline.engine.runner import analyze_video, cached_plugins, estimate_run_cost, merge_markers, transcribe_with_fallbacks
from vidintel_pipeline.defs.partitions import run_tags, videos_partitions
from vidintel_pipeline.defs.progress import report
from vidintel_pipeline.engine.speakers import assign_speakers
from vidintel_pipeline.storage.stores import Store, StorageError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".mxf", ".wmv", ".flv")

PROBE = "probe.json"
CHUNK_MANIFEST = "manifest.json"
AUDIO = "audio_16k.wav"
KEYFRAME_INDEX = "keyframes.json"
MARKERS = "markers.json"
PROMPT_MARKERS = "prompt_markers.json"
TRANSCRIPT = "transcript.json"


def _ref(context: dg.AssetExecutionContext) -> VideoRef:
    try:
        return VideoRef.from_partition_key(context.partition_key)
    except InvalidIdError as exc:
        raise dg.Failure(description=f"Bad partition key: {exc}", allow_retries=False) from exc


def _need(store: Store, key: str, what: str) -> Any:
    try:
        return store.get_json(key)
    except StorageError as exc:
        raise dg.Failure(description=f"{what} is missing ({exc}); materialize the upstream assets first.",
                         allow_retries=False) from exc


def _optional(store: Store, key: str) -> Any:
    return store.get_json(key) if store.exists(key) else None


def find_source_key(store: Store, ref: VideoRef) -> str:
    """The video object under ``source/``; the newest if several were dropped there."""
    objs = [o for o in store.list_objects(ref.prefix + "source/") if o.key.lower().endswith(VIDEO_EXTENSIONS)]
    if not objs:
        raise dg.Failure(
            description=f"No video under {store.uri(ref.prefix + 'source/')} for partition {ref.partition_key}. "
            "Ingest one with `vidintel ingest PATH --project P`.",
            allow_retries=False,
        )
    return max(objs, key=lambda o: (o.last_modified, o.key)).key


def _f(value: float) -> dg.FloatMetadataValue:
    return dg.FloatMetadataValue(float(value))


def clamp_transcript(result: TranscriptionResult, end_s: float) -> int:
    """Words and segments past ``end_s`` (the video's end): those starting after it are dropped, those
    straddling it end there. Speech models extrapolate the last word's end beyond the audio (by 0.7 s on a
    truncated file here), and audio often runs a little past the last picture. Returns how many changed."""
    n = 0
    segments = []
    for seg in result.segments:
        if seg.start_s >= end_s:
            n += 1 + len(seg.words)
            continue
        kept = [w for w in seg.words if w.start_s < end_s]
        n += len(seg.words) - len(kept)
        for item in [seg, *kept]:
            if item.end_s > end_s:
                item.end_s, n = end_s, n + 1
        seg.words = kept
        segments.append(seg)
    result.segments = segments
    return n


def run_warnings(runs: list[dict[str, Any]], kind: str = "plugin") -> list[str]:
    """One line per problem a user must see: a failed plugin with its error, markers clamped or dropped."""
    out = []
    for r in runs:
        if r.get("status", "ok") != "ok":
            out.append(f"{kind} {r['plugin']} failed: {r.get('error', 'no reason given')}")
        if r.get("dropped"):
            out.append(f"{kind} {r['plugin']}: {r['dropped']} marker(s) dropped ({'; '.join(r.get('warnings', [])[:1])})")
        if r.get("clamped"):
            out.append(f"{kind} {r['plugin']}: {r['clamped']} marker(s) clamped into the video's time range")
    return out


def source_warnings(info: dict[str, Any], decode: Optional[dict[str, Any]] = None) -> list[str]:
    """A truncated or damaged source, in words: what the header promised against what could be read."""
    out = []
    if info.get("truncated"):
        out.append(f"source truncated: {info.get('readable_video_s') or 0:.2f} s of video and "
                   f"{info.get('readable_audio_s') or 0:.2f} s of audio readable of {info.get('declared_duration_s', 0):.2f} s "
                   "declared; everything after is missing")
    if decode and (decode.get("errors") or decode.get("corrupt")):
        out.append(f"source damaged: {decode.get('errors', 0)} undecodable packet(s) and {decode.get('corrupt', 0)} "
                   f"corrupt frame(s), first at {decode.get('first_error_s', 0) or 0:.2f} s")
    return out


def _warnings_md(warnings: list[str]) -> dg.MarkdownMetadataValue:
    return dg.MetadataValue.md("\n".join(f"- **{w}**" for w in warnings) if warnings else "none")


def _cost_meta(by_plugin: dict[str, float]) -> dict[str, Any]:
    meta: dict[str, Any] = {"cost/usd": _f(round(sum(by_plugin.values()), 6))}
    for name, usd in sorted(by_plugin.items()):
        meta[f"cost/plugin/{name}"] = _f(round(usd, 6))
    return meta


# --------------------------------------------------------------------------------------------------------
@dg.asset(
    partitions_def=videos_partitions, group_name="ingestion", kinds={"video", "pyav"},
    description="The source video as dropped into storage: validated and probed (duration, fps, streams, rotation).",
)
def source_video(context: dg.AssetExecutionContext, storage: VidintelStorage) -> dg.MaterializeResult:
    ref = _ref(context)
    context.instance.add_run_tags(context.run_id, run_tags(ref))
    report(context, IngestionPhase.INITIALIZING, 0, video=ref.partition_key)
    store = storage.for_video(ref)[0]
    key = find_source_key(store, ref)
    try:
        storage.check_size(Path(key).name, store.size(key))  # named like probe names it
        info = probe(store.local_path(key))
    except (StorageError, MediaError) as exc:
        raise dg.Failure(description=f"Cannot use {key}: {exc}", allow_retries=False) from exc
    if not info.has_video:
        raise dg.Failure(description=f"Cannot use {key}: it has no video stream", allow_retries=False)
    warnings = source_warnings(info.as_dict())
    if warnings and storage.strict():
        raise dg.Failure(description=f"Cannot use {key} (strict): {warnings[0]}", allow_retries=False)
    for w in warnings:
        context.log.warning(f"{key}: {w}")
    doc = info.as_dict() | {"key": key, "path": None, "sha256": file_sha256(str(store.local_path(key)))}
    uri = store.put_json(ref.key("metadata", PROBE), doc)
    report(context, IngestionPhase.INITIALIZING, 100, duration_s=info.duration_s)
    return dg.MaterializeResult(metadata={
        "source_uri": dg.MetadataValue.url(store.uri(key)),
        "probe_uri": dg.MetadataValue.url(uri),
        "video_seconds": _f(info.duration_s),
        "size_bytes": dg.IntMetadataValue(info.size_bytes),
        "resolution": f"{info.display_size[0]}x{info.display_size[1]}",
        "fps": _f(round(info.fps, 3)),
        "video_codec": info.video_codec or "",
        "has_audio": dg.BoolMetadataValue(info.has_audio),
        "rotation": dg.IntMetadataValue(info.rotation),
        "truncated": dg.BoolMetadataValue(info.truncated),
        "declared_seconds": _f(info.declared_duration_s),
        "warnings": _warnings_md(warnings),
        "sha256": doc["sha256"],
        **_cost_meta({}),
    })


@dg.asset(
    partitions_def=videos_partitions, group_name="ingestion", kinds={"video", "ffmpeg"}, deps=[source_video],
    description="Stream-copied chunks (no re-encode), cut at keyframes, no longer than the selected plugins allow.",
)
def video_chunks(
    context: dg.AssetExecutionContext, storage: VidintelStorage, temporal_plugins: TemporalPluginsResource
) -> dg.MaterializeResult:
    ref = _ref(context)
    store = storage.for_video(ref)[0]
    info = _need(store, ref.key("metadata", PROBE), "source_video's probe")
    limits = [p.info.max_chunk_duration for p in _plugins(temporal_plugins) if p.info.max_chunk_duration]
    max_chunk = min(limits) if limits else temporal_plugins.default_chunk_s
    report(context, IngestionPhase.CHUNKING, 0, max_chunk_s=max_chunk)
    src = store.local_path(info["key"])
    plans = plan_chunks(keyframe_times(src), info["duration_s"], max_chunk)
    ext = Path(info["key"]).suffix.lower() or ".mp4"
    staging = store.staging_dir(ref.prefix + "chunks/")
    try:
        try:
            files = cut_chunks(src, plans, staging, ext)
        except MediaError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        entries = []
        for plan, f in zip(plans, files):
            k = ref.key("chunks", f.name)
            store.put_file(k, f, move=True)
            entries.append(plan.as_dict() | {"key": k, "size_bytes": store.size(k)})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest = {"source_key": info["key"], "max_chunk_s": max_chunk, "method": "stream_copy", "chunks": entries}
    uri = store.put_json(ref.key("chunks", CHUNK_MANIFEST), manifest)
    keep = {e["key"] for e in entries} | {ref.key("chunks", CHUNK_MANIFEST), ref.key("chunks", AUDIO)}
    for stale in [k for k in store.list(ref.prefix + "chunks/") if k not in keep]:
        store.delete(stale)
    over = sum(1 for e in entries if e["over_limit"])
    if over:
        context.log.warning(f"{over} chunk(s) exceed {max_chunk} s: the source's keyframes are too far apart to cut by stream copy")
    report(context, IngestionPhase.CHUNKING, 100, chunks=len(entries))
    return dg.MaterializeResult(metadata={
        "manifest_uri": dg.MetadataValue.url(uri),
        "chunks": dg.IntMetadataValue(len(entries)),
        "max_chunk_s": _f(max_chunk),
        "over_limit_chunks": dg.IntMetadataValue(over),
        "video_seconds": _f(info["duration_s"]),
        **_cost_meta({}),
    })


@dg.asset(
    partitions_def=videos_partitions, group_name="ingestion", kinds={"audio", "ffmpeg"}, deps=[source_video],
    description="The audio track, extracted once as 16 kHz mono PCM WAV for speech and silence detection.",
)
def audio(context: dg.AssetExecutionContext, storage: VidintelStorage) -> dg.MaterializeResult:
    ref = _ref(context)
    store = storage.for_video(ref)[0]
    info = _need(store, ref.key("metadata", PROBE), "source_video's probe")
    key = ref.key("chunks", AUDIO)
    if not info["has_audio"]:
        store.delete(key)
        context.log.info("video has no audio track: transcript and silence detection will be empty")
        return dg.MaterializeResult(metadata={"has_audio": dg.BoolMetadataValue(False), **_cost_meta({})})
    staging = store.staging_dir(ref.prefix + "chunks/")
    try:
        extract_audio(store.local_path(info["key"]), staging / AUDIO, offset_s=info.get("audio_offset_s", 0.0))
        uri = store.put_file(key, staging / AUDIO, move=True)
    except MediaError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dg.MaterializeResult(metadata={
        "has_audio": dg.BoolMetadataValue(True),
        "audio_uri": dg.MetadataValue.url(uri),
        "sample_rate": dg.IntMetadataValue(16000),
        "video_seconds": _f(info["duration_s"]),
        **_cost_meta({}),
    })


def _plugins(resource: TemporalPluginsResource) -> list:
    try:
        return resource.create()
    except PluginError as exc:
        raise dg.Failure(description=f"Plugin configuration error: {exc}", allow_retries=False) from exc


@dg.multi_asset(
    partitions_def=videos_partitions,
    can_subset=False,
    specs=[
        dg.AssetSpec("keyframes", group_name="analysis", kinds={"jpeg", "opencv"}, deps=[source_video, video_chunks],
                     description="The sharpest frame of every detected shot, as downscaled JPEGs."),
        dg.AssetSpec("temporal_markers", group_name="analysis", kinds={"python", "opencv"},
                     deps=[source_video, video_chunks, audio],
                     description="Shot boundaries, technical cues, faces and more, from the selected temporal plugins."),
    ],
    description="One decode of the video feeds every visual detector and the keyframe selector.",
)
def visual_analysis(
    context: dg.AssetExecutionContext, storage: VidintelStorage, temporal_plugins: TemporalPluginsResource,
    costs: CostControls,
):
    ref = _ref(context)
    store = storage.for_video(ref)[0]
    info = _need(store, ref.key("metadata", PROBE), "source_video's probe")
    manifest = _need(store, ref.key("chunks", CHUNK_MANIFEST), "video_chunks' manifest")
    plugins = [p for p in _plugins(temporal_plugins) if not p.info.uses_results]  # those run in prompt_markers
    names = [p.name for p in plugins]
    report(context, IngestionPhase.ANALYZING_TEMPORAL, 0, providers_active=names)
    audio_key = ref.key("chunks", AUDIO)
    audio_path = str(store.local_path(audio_key)) if store.exists(audio_key) else None
    common = dict(project_id=ref.project_id, video_id=ref.video_id, fps=info["fps"], width=info["width"],
                  height=info["height"], audio_path=audio_path)
    source = ChunkInfo(index=0, path=str(store.local_path(info["key"])), uri=store.uri(info["key"]), start_s=0.0,
                       end_s=info["duration_s"], **common)
    # chunk files are fetched (from S3) only if some plugin will actually read chunks
    needs_chunks = any((p.info.max_chunk_duration or float("inf")) < info["duration_s"] for p in plugins)
    chunks = [
        ChunkInfo(index=i, path=str(store.local_path(c["key"])) if needs_chunks else store.uri(c["key"]),
                  uri=store.uri(c["key"]), start_s=c["start_s"], end_s=c["end_s"], **common)
        for i, c in enumerate(manifest["chunks"])
    ]
    config = AnalysisConfig(project_id=ref.project_id, video_id=ref.video_id,
                            prompt=temporal_plugins.prompt, min_confidence=temporal_plugins.min_confidence)
    cache = ResultCache(store, ref, enabled=costs.use_cache)
    sha = info["sha256"]
    estimate = estimate_run_cost(source=source, chunks=chunks, plugins=plugins, config=config, cache=cache, content_sha256=sha)
    costs.check_budget(project_id=ref.project_id, video_id=ref.video_id, estimate_usd=sum(estimate.values()),
                       what="temporal analysis (" + ", ".join(f"{k} ${v:.4f}" for k, v in estimate.items()) + ")")
    # keyframes need a decode; if every frame plugin is cached and the keyframes match this source, skip it
    old_index = store.get_json(ref.key("keyframes", KEYFRAME_INDEX)) if store.exists(ref.key("keyframes", KEYFRAME_INDEX)) else None
    frame_plugins = [p for p in plugins if isinstance(p, FramePlugin)]
    hits = cached_plugins(source=source, chunks=chunks, plugins=frame_plugins, config=config, cache=cache, content_sha256=sha)
    all_cached = bool(frame_plugins) and len(hits) == len(frame_plugins)
    reuse_keyframes = bool(costs.use_cache and all_cached and isinstance(old_index, dict) and old_index.get("source_sha256") == sha)
    selector = None if reuse_keyframes else KeyframeSelector()
    t0 = time.perf_counter()
    try:
        result = analyze_video(
            source=source, chunks=chunks, plugins=plugins, keyframes=selector, config=config,
            policy=temporal_plugins.policy(), cache=cache, content_sha256=sha, make_plugin=temporal_plugins.factory(),
            on_progress=lambda pct, what: report(context, IngestionPhase.ANALYZING_TEMPORAL, pct * 0.95, step=what),
        )
    except MediaError as exc:  # unreadable media is permanent; a decoding process that died may not be
        raise dg.Failure(description=str(exc), allow_retries=getattr(exc, "retryable", False)) from exc
    elapsed = time.perf_counter() - t0
    decode = result.decode.as_dict()
    if not result.frames_decoded:  # every frame plugin cached: what the last decode of this very file met
        old = _optional(store, ref.key("metadata", MARKERS))
        decode = old.get("decode", {}) if isinstance(old, dict) and old.get("source_sha256") == sha else {}
    if storage.strict() and (decode.get("errors") or decode.get("corrupt")):
        raise dg.Failure(description=f"Cannot use {info['key']} (strict): " + source_warnings(info, decode)[0],
                         allow_retries=False)
    for run in result.failed:
        context.log.error(f"plugin {run.plugin} failed: {run.error}")
    ok_names = {r.plugin for r in result.runs if r.status == "ok"}
    if plugins and not ok_names:
        raise dg.Failure(description="every temporal plugin failed: " + "; ".join(f"{r.plugin}: {r.error}" for r in result.failed),
                         allow_retries=any(r.retryable for r in result.failed))  # throttled or timed out: the step retry policy tries again

    # keyframes: write JPEGs, then the index, then remove stale ones
    if selector is None:
        frames = [Keyframe.model_validate(k) for k in old_index["keyframes"]]
    else:
        frames = []
        for shot, cand in selector.select(result.markers, info["duration_s"]):
            k = ref.key("keyframes", f"shot{shot:04d}_{int(round(cand.time_s * 1000)):09d}ms.jpg")
            store.put_bytes(k, cand.jpeg)
            frames.append(Keyframe(time_s=round(cand.time_s, 3), uri=store.uri(k), shot_index=shot, sharpness=round(cand.sharpness, 1)))
    kf_uri = store.put_json(ref.key("keyframes", KEYFRAME_INDEX),
                            {"source_sha256": sha, "keyframes": [f.model_dump() for f in frames]})
    keep = {ref.key("keyframes", Path(f.uri).name) for f in frames} | {ref.key("keyframes", KEYFRAME_INDEX)}
    for stale in [k for k in store.list(ref.prefix + "keyframes/") if k not in keep]:
        store.delete(stale)

    cost = result.cost_by_plugin
    ledger = costs.ledger()
    for run in result.runs:
        ledger.record(run_id=context.run_id, asset="temporal_markers", project_id=ref.project_id, video_id=ref.video_id,
                      plugin=run.plugin, usd=run.cost_usd, media_seconds=info["duration_s"], cached=run.cached)
    doc = {
        "markers": [m.model_dump() for m in result.markers],
        "plugins": [r.as_dict() for r in result.runs],
        "cost": CostSummary(total_usd=round(sum(cost.values()), 6), by_plugin=cost).model_dump(),
        "decode": decode,
        "source_sha256": sha,
    }
    mk_uri = store.put_json(ref.key("metadata", MARKERS), doc)
    by_type: dict[str, int] = {}
    for m in result.markers:
        by_type[m.type] = by_type.get(m.type, 0) + 1
    report(context, IngestionPhase.ANALYZING_TEMPORAL, 100, markers_detected=len(result.markers))
    fps_x = info["duration_s"] / elapsed if elapsed > 0 else 0.0
    yield dg.MaterializeResult(asset_key="keyframes", metadata={
        "keyframes": dg.IntMetadataValue(len(frames)),
        "index_uri": dg.MetadataValue.url(kf_uri),
        "video_seconds": _f(info["duration_s"]),
        **_cost_meta({}),
    })
    yield dg.MaterializeResult(asset_key="temporal_markers", metadata={
        "markers": dg.IntMetadataValue(len(result.markers)),
        "markers_by_type": dg.JsonMetadataValue(by_type),
        "plugins": dg.JsonMetadataValue([r.as_dict() for r in result.runs]),
        "plugins_failed": dg.IntMetadataValue(len(result.failed)),
        "warnings": _warnings_md(source_warnings(info, decode) + run_warnings([r.as_dict() for r in result.runs])),
        "decode_errors": dg.IntMetadataValue(decode.get("errors", 0) + decode.get("corrupt", 0)),
        "markers_clamped": dg.IntMetadataValue(sum(r.clamped for r in result.runs)),
        "markers_dropped": dg.IntMetadataValue(sum(r.dropped for r in result.runs)),
        "plugins_fell_back": dg.JsonMetadataValue({r.plugin: r.fallback_for for r in result.runs if r.fallback_for}),
        "cache/hits": dg.IntMetadataValue(sum(1 for r in result.runs if r.cached)),
        "cache/misses": dg.IntMetadataValue(sum(1 for r in result.runs if not r.cached)),
        "cost/estimate_usd": _f(sum(estimate.values())),
        "frames_decoded": dg.IntMetadataValue(result.frames_decoded),
        "decode_segments": dg.IntMetadataValue(result.decode_segments),
        "speed_x_realtime": _f(round(fps_x, 2)),
        "markers_uri": dg.MetadataValue.url(mk_uri),
        "video_seconds": _f(info["duration_s"]),
        **_cost_meta(cost),
    })


@dg.asset(
    partitions_def=videos_partitions, group_name="analysis", kinds={"python", "json"}, deps=[audio],
    description="Timed transcript (segments, words, language) from the selected transcription plugin.",
)
def transcript(
    context: dg.AssetExecutionContext, storage: VidintelStorage, transcription: TranscriptionResource,
    costs: CostControls,
) -> dg.MaterializeResult:
    ref = _ref(context)
    store = storage.for_video(ref)[0]
    info = _need(store, ref.key("metadata", PROBE), "source_video's probe")
    audio_key = ref.key("chunks", AUDIO)
    by_plugin: dict[str, float] = {}
    runs: list[dict[str, Any]] = []
    cached = False
    if not transcription.enabled or not store.exists(audio_key):
        why = "disabled" if not transcription.enabled else "no audio track"
        result = TranscriptionResult(duration_s=info["duration_s"], plugin="none")
        context.log.info(f"transcript empty: {why}")
        report(context, IngestionPhase.TRANSCRIBING_AUDIO, 100, providers_active=[], words=0)
    else:
        try:
            chain = transcription.chain()
        except PluginError as exc:
            raise dg.Failure(description=f"Plugin configuration error: {exc}", allow_retries=False) from exc
        audio_path = str(store.local_path(audio_key))
        config = transcription.config().model_copy(update={
            "project_id": ref.project_id, "video_id": ref.video_id, "audio_uri": store.uri(audio_key)})
        cache = ResultCache(store, ref, enabled=costs.use_cache)
        sha = file_sha256(audio_path)
        key = cache_key(content_sha256=sha, plugin=chain[0], config=config)
        hit = cache.get(chain[0].name, key)
        if hit is not None:
            result, cached = TranscriptionResult.model_validate(hit), True
            by_plugin[chain[0].name] = 0.0
            runs = [{"plugin": chain[0].name, "version": chain[0].info.plugin_version, "status": "ok", "cached": True, "cost_usd": 0.0}]
        else:
            estimate = chain[0].estimate_cost(info["duration_s"])
            costs.check_budget(project_id=ref.project_id, video_id=ref.video_id, estimate_usd=estimate,
                               what=f"transcription with {chain[0].name} (${estimate:.4f})")
            report(context, IngestionPhase.TRANSCRIBING_AUDIO, 0, providers_active=[chain[0].name])
            result, plugin_runs, winner = transcribe_with_fallbacks(chain, audio_path, config, transcription.policy())
            runs = [r.as_dict() for r in plugin_runs]
            if result is None:
                raise dg.Failure(
                    description="Transcription failed: " + "; ".join(f"{r.plugin}: {r.error}" for r in plugin_runs),
                    metadata={"plugins": dg.JsonMetadataValue(runs)},
                    allow_retries=any(r.retryable for r in plugin_runs),
                )
            usd = winner.estimate_cost(info["duration_s"])
            by_plugin[winner.name] = usd
            runs[-1]["cost_usd"] = usd
            cache.put(winner.name, cache_key(content_sha256=sha, plugin=winner, config=config), result.model_dump(mode="json"))
            for r in plugin_runs:
                if r.status != "ok":
                    context.log.error(f"transcription plugin {r.plugin} failed: {r.error}")
        clamped = clamp_transcript(result, info["duration_s"])
        if clamped:
            context.log.warning(f"{clamped} word(s) or segment(s) past the video's end ({info['duration_s']:.2f} s) dropped or cut there")
        report(context, IngestionPhase.TRANSCRIBING_AUDIO, 100, words=result.word_count)
        ledger = costs.ledger()
        for name, usd in by_plugin.items():
            ledger.record(run_id=context.run_id, asset="transcript", project_id=ref.project_id, video_id=ref.video_id,
                          plugin=name, usd=usd, media_seconds=info["duration_s"], cached=cached)
    doc = result.model_dump() | {"cost": CostSummary(total_usd=sum(by_plugin.values()), by_plugin=by_plugin).model_dump(),
                                 "plugin_runs": runs}
    uri = store.put_json(ref.key("transcripts", TRANSCRIPT), doc)
    return dg.MaterializeResult(metadata={
        "transcript_uri": dg.MetadataValue.url(uri),
        "language": result.language or "",
        "segments": dg.IntMetadataValue(len(result.segments)),
        "words": dg.IntMetadataValue(result.word_count),
        "plugins": dg.JsonMetadataValue(runs),
        "cache/hits": dg.IntMetadataValue(int(cached)),
        "excerpt": dg.MetadataValue.text(result.text[:300]),
        "video_seconds": _f(info["duration_s"]),
        **_cost_meta(by_plugin),
    })


@dg.asset(
    partitions_def=videos_partitions, group_name="analysis", kinds={"python", "json"}, deps=["temporal_markers", transcript],
    description="Moments matching the run's prompt (temporal_plugins.prompt), from plugins that read the other results "
                "(transcript, on-screen text, labels) rather than the media.",
)
def prompt_markers(
    context: dg.AssetExecutionContext, storage: VidintelStorage, temporal_plugins: TemporalPluginsResource,
) -> dg.MaterializeResult:
    ref = _ref(context)
    store = storage.for_video(ref)[0]
    info = _need(store, ref.key("metadata", PROBE), "source_video's probe")
    plugins = [p for p in _plugins(temporal_plugins) if p.info.uses_results]
    prompt = temporal_plugins.prompt or ""
    markers: list[TemporalMarker] = []
    runs: list[dict[str, Any]] = []
    cost: dict[str, float] = {}
    if plugins and prompt.strip():
        found = _need(store, ref.key("metadata", MARKERS), "temporal_markers")["markers"]
        tr = _need(store, ref.key("transcripts", TRANSCRIPT), "transcript")
        source = ChunkInfo(
            project_id=ref.project_id, video_id=ref.video_id, path=str(store.uri(info["key"])), uri=store.uri(info["key"]),
            start_s=0.0, end_s=info["duration_s"], markers=[TemporalMarker.model_validate(m) for m in found],
            transcript=TranscriptionResult.model_validate({k: v for k, v in tr.items() if k not in ("cost", "plugin_runs")}),
        )
        config = AnalysisConfig(project_id=ref.project_id, video_id=ref.video_id, prompt=prompt,
                                min_confidence=temporal_plugins.min_confidence)
        result = analyze_video(source=source, chunks=[source], plugins=plugins, config=config,
                               policy=temporal_plugins.policy(), make_plugin=temporal_plugins.factory())
        for run in result.failed:
            context.log.error(f"plugin {run.plugin} failed: {run.error}")
        if not any(r.status == "ok" for r in result.runs):
            raise dg.Failure(description="every prompt plugin failed: " + "; ".join(f"{r.plugin}: {r.error}" for r in result.failed),
                             allow_retries=any(r.retryable for r in result.failed))
        markers, runs, cost = result.markers, [r.as_dict() for r in result.runs], result.cost_by_plugin
    elif plugins:
        context.log.info("no prompt given (temporal_plugins.prompt): no prompt markers")
    uri = store.put_json(ref.key("metadata", PROMPT_MARKERS), {
        "prompt": prompt, "markers": [m.model_dump() for m in markers], "plugins": runs,
        "cost": CostSummary(total_usd=round(sum(cost.values()), 6), by_plugin=cost).model_dump(),
    })
    return dg.MaterializeResult(metadata={
        "prompt": prompt,
        "markers": dg.IntMetadataValue(len(markers)),
        "best_match": dg.MetadataValue.text(markers[0].attributes.get("matched", markers[0].label) if markers else ""),
        "plugins": dg.JsonMetadataValue(runs),
        "markers_uri": dg.MetadataValue.url(uri),
        **_cost_meta(cost),
    })


@dg.asset(
    partitions_def=videos_partitions, group_name="outputs", kinds={"json"},
    deps=["temporal_markers", "keyframes", transcript, prompt_markers, "gpu_analysis"],
    description="The memory document: one merged, searchable timeline of everything found in the video.",
)
def memory(context: dg.AssetExecutionContext, storage: VidintelStorage, costs: CostControls) -> dg.MaterializeResult:
    ref = _ref(context)
    store, out = storage.for_video(ref)
    report(context, IngestionPhase.BUILDING_MEMORY, 0)
    info = _need(store, ref.key("metadata", PROBE), "source_video's probe")
    markers = _need(store, ref.key("metadata", MARKERS), "temporal_markers")
    tr = _need(store, ref.key("transcripts", TRANSCRIPT), "transcript")
    kfs = _need(store, ref.key("keyframes", KEYFRAME_INDEX), "keyframes")["keyframes"]
    empty = {"markers": [], "plugins": [], "cost": CostSummary(total_usd=0.0).model_dump()}
    prompted = _optional(store, ref.key("metadata", PROMPT_MARKERS)) or empty  # absent before prompt_markers existed
    # gpu_analysis runs only in the GPU job: use its results when they are for this very source
    gpu = _optional(store, ref.key("metadata", "gpu_markers.json"))
    gpu = gpu if gpu and gpu.get("source_sha256") == info["sha256"] else empty
    speakers = _optional(store, ref.key("transcripts", "speakers.json"))
    turns = [SpeakerTurn.model_validate(t) for t in speakers["turns"]] \
        if speakers and speakers.get("source_sha256") == info["sha256"] else []
    by_plugin: dict[str, float] = {}
    for part in (markers["cost"], tr["cost"], prompted["cost"], gpu["cost"]):
        for name, usd in part["by_plugin"].items():
            by_plugin[name] = by_plugin.get(name, 0.0) + usd
    plugins = [{"name": r["plugin"], "version": r["version"], "kind": "temporal", "status": r["status"]}
               for r in markers["plugins"] + prompted["plugins"] + gpu["plugins"]]
    plugins += [{"name": r["plugin"], "version": r.get("version", ""), "kind": r.get("kind", "transcription"), "status": r["status"]}
                for r in tr["plugin_runs"]]
    transcript_doc = TranscriptionResult.model_validate({k: v for k, v in tr.items() if k not in ("cost", "plugin_runs")})
    warnings = source_warnings(info, markers.get("decode")) + run_warnings(markers["plugins"] + prompted["plugins"] + gpu["plugins"]) \
        + run_warnings(tr["plugin_runs"], "transcription plugin")
    for w in warnings:
        context.log.warning(w)
    if turns and not any(seg.speaker for seg in transcript_doc.segments):
        transcript_doc = assign_speakers(transcript_doc, turns)
    doc = MemoryDocument(
        project_id=ref.project_id, video_id=ref.video_id, duration_s=info["duration_s"],
        source={k: info.get(k) for k in ("key", "width", "height", "fps", "video_codec", "has_audio", "rotation", "size_bytes",
                                        "truncated", "declared_duration_s", "readable_video_s", "readable_audio_s",
                                        "video_start_s", "audio_offset_s")},
        markers=merge_markers([TemporalMarker.model_validate(m) for m in markers["markers"] + prompted["markers"] + gpu["markers"]]),
        transcript=transcript_doc,
        keyframes=[Keyframe.model_validate(k) for k in kfs],
        cost=CostSummary(total_usd=round(sum(by_plugin.values()), 6), by_plugin=by_plugin),
        plugins=plugins,
        warnings=warnings,
    )
    report(context, IngestionPhase.BUILDING_MEMORY, 100, markers_detected=len(doc.markers))
    report(context, IngestionPhase.FINALIZING, 50)
    ledger = costs.ledger()
    uri = out.put_json(ref.memory_key, doc.model_dump(mode="json"))
    report(context, IngestionPhase.FINALIZING, 100, memory=uri)
    return dg.MaterializeResult(metadata={
        "memory_uri": dg.MetadataValue.url(uri),
        "markers": dg.IntMetadataValue(len(doc.markers)),
        "words": dg.IntMetadataValue(doc.transcript.word_count),
        "keyframes": dg.IntMetadataValue(len(doc.keyframes)),
        "plugins": dg.JsonMetadataValue(plugins),
        "warnings": _warnings_md(warnings),
        "warning_count": dg.IntMetadataValue(len(warnings)),
        "video_seconds": _f(info["duration_s"]),
        "cost/video_total_usd": _f(ledger.get_total_cost(video_id=ref.video_id, project_id=ref.project_id)),
        "cost/project_total_usd": _f(ledger.get_total_cost(project_id=ref.project_id)),
        **_cost_meta(by_plugin),
    })


@dg.asset(
    group_name="costs", kinds={"sqlite"}, deps=[memory],
    automation_condition=dg.AutomationCondition.eager(),
    description="What every project has spent, per plugin, from the cost ledger (all runs, cached ones at $0).",
)
def project_costs(costs: CostControls) -> dg.MaterializeResult:
    projects = costs.ledger().projects()
    lines = ["| project | videos | total USD | by plugin |", "|---|---|---|---|"]
    for name, p in sorted(projects.items()):
        plugins = ", ".join(f"{k} ${v:.4f}" for k, v in p["by_plugin"].items())
        lines.append(f"| {name} | {p['videos']} | {p['total_usd']:.4f} | {plugins} |")
    meta: dict[str, Any] = {
        "report": dg.MetadataValue.md("\n".join(lines)),
        "projects": dg.JsonMetadataValue(projects),
        "cost/total_usd": _f(sum(p["total_usd"] for p in projects.values())),
    }
    for name, p in projects.items():
        meta[f"cost/project/{name}"] = _f(p["total_usd"])
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    partitions_def=videos_partitions, group_name="outputs", kinds={"srt", "csv"}, deps=[memory],
    description="The memory as SRT and WebVTT subtitles, a CSV of markers, a CMX3600 EDL of the shots and JSON, in exports/.",
)
def exports(context: dg.AssetExecutionContext, storage: VidintelStorage) -> dg.MaterializeResult:
    from vidintel_pipeline.outputs.exports import FORMATS, render, shot_spans

    ref = _ref(context)
    out = storage.for_video(ref)[1]
    doc = MemoryDocument.model_validate(_need(out, ref.memory_key, "memory"))
    uris = {}
    for fmt in FORMATS:
        uris[fmt] = out.put_bytes(ref.output_key("exports", f"{ref.video_id}.{fmt}"), render(doc, fmt).encode())
    return dg.MaterializeResult(metadata={
        **{f"{fmt}_uri": dg.MetadataValue.url(u) for fmt, u in uris.items()},
        "shots": dg.IntMetadataValue(len(shot_spans(doc))),
        "subtitle_segments": dg.IntMetadataValue(len(doc.transcript.segments)),
    })


@dg.asset(
    partitions_def=videos_partitions, group_name="outputs", kinds={"sqlite"}, deps=[memory],
    description="The project's search index (full text + meaning), brought up to date with this video's memory.",
)
def search_index(context: dg.AssetExecutionContext, storage: VidintelStorage) -> dg.MaterializeResult:
    from vidintel_pipeline.models.embeddings import ModelMissing, default_embedder
    from vidintel_pipeline.outputs.search import sync

    ref = _ref(context)
    out = storage.for_video(ref)[1]
    try:
        embedder = default_embedder()
    except ModelMissing as exc:
        embedder = None
        context.log.warning(f"semantic search off for this update: {exc}")
    stats = sync(out, ref.project_id, embedder)
    return dg.MaterializeResult(metadata={
        "index_uri": dg.MetadataValue.url(stats["index_uri"]),
        "videos_in_project": dg.IntMetadataValue(stats["videos"]),
        "entries": dg.IntMetadataValue(stats["entries"]),
        "semantic_entries": dg.IntMetadataValue(stats["semantic_entries"]),
        "reindexed": dg.JsonMetadataValue(stats["reindexed"]),
        "removed": dg.JsonMetadataValue(stats["removed"]),
    })


per_video_assets = [source_video, video_chunks, audio, visual_analysis, transcript, prompt_markers, memory, exports,
                    search_index]
