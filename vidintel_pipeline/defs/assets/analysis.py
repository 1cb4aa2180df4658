"""The ``analysis`` group on the CPU: keyframes and temporal markers from one decode, the transcript, prompt markers."""

import time
from pathlib import Path
from typing import Any

import dagster as dg

from vidintel.resources import CostControls, TemporalPluginsResource, TranscriptionResource, VidintelStorage
from vidintel_pipeline.defs.assets.common import (
    cost_meta,
    create_temporal_plugins,
    float_meta,
    need_json,
    optional_json,
    run_warnings,
    source_warnings,
    video_ref,
    warnings_md,
)
from vidintel_pipeline.defs.assets.ingestion import audio, source_video, video_chunks
from vidintel_pipeline.defs.partitions import videos_partitions
from vidintel_pipeline.defs.progress import report
from vidintel_pipeline.engine.cache import ResultCache, cache_key, file_sha256
from vidintel_pipeline.engine.keyframes import KeyframeSelector
from vidintel_pipeline.engine.runner import analyze_video, cached_plugins, estimate_run_cost, transcribe_with_fallbacks
from vidintel_pipeline.media import MediaError
from vidintel_pipeline.plugin_api.contracts import (
    AnalysisConfig,
    ChunkInfo,
    CostSummary,
    IngestionPhase,
    Keyframe,
    PluginError,
    TemporalMarker,
    TranscriptionResult,
)
from vidintel_pipeline.plugin_api.frame_plugin import FramePlugin
from vidintel_pipeline.storage.layout import (
    AUDIO,
    CHUNK_MANIFEST,
    KEYFRAME_INDEX,
    MARKERS,
    PROBE,
    PROMPT_MARKERS,
    TRANSCRIPT,
)


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


@dg.multi_asset(
    partitions_def=videos_partitions,
    can_subset=False,
    specs=[
        dg.AssetSpec(
            "keyframes",
            group_name="analysis",
            kinds={"jpeg", "opencv"},
            deps=[source_video, video_chunks],
            description="The sharpest frame of every detected shot, as downscaled JPEGs.",
        ),
        dg.AssetSpec(
            "temporal_markers",
            group_name="analysis",
            kinds={"python", "opencv"},
            deps=[source_video, video_chunks, audio],
            description="Shot boundaries, technical cues, faces and more, from the selected temporal plugins.",
        ),
    ],
    description="One decode of the video feeds every visual detector and the keyframe selector.",
)
def visual_analysis(
    context: dg.AssetExecutionContext,
    storage: VidintelStorage,
    temporal_plugins: TemporalPluginsResource,
    costs: CostControls,
):
    ref = video_ref(context)
    store = storage.for_video(ref)[0]
    info = need_json(store, ref.key("metadata", PROBE), "source_video's probe")
    manifest = need_json(store, ref.key("chunks", CHUNK_MANIFEST), "video_chunks' manifest")
    plugins = [
        p for p in create_temporal_plugins(temporal_plugins) if not p.info.uses_results
    ]  # those run in prompt_markers
    names = [p.name for p in plugins]
    report(context, IngestionPhase.ANALYZING_TEMPORAL, 0, providers_active=names)
    audio_key = ref.key("chunks", AUDIO)
    audio_path = str(store.local_path(audio_key)) if store.exists(audio_key) else None
    common = dict(
        project_id=ref.project_id,
        video_id=ref.video_id,
        fps=info["fps"],
        width=info["width"],
        height=info["height"],
        audio_path=audio_path,
    )
    source = ChunkInfo(
        index=0,
        path=str(store.local_path(info["key"])),
        uri=store.uri(info["key"]),
        start_s=0.0,
        end_s=info["duration_s"],
        **common,
    )
    # chunk files are fetched (from S3) only if some plugin will actually read chunks
    needs_chunks = any((p.info.max_chunk_duration or float("inf")) < info["duration_s"] for p in plugins)
    chunks = [
        ChunkInfo(
            index=i,
            path=str(store.local_path(c["key"])) if needs_chunks else store.uri(c["key"]),
            uri=store.uri(c["key"]),
            start_s=c["start_s"],
            end_s=c["end_s"],
            **common,
        )
        for i, c in enumerate(manifest["chunks"])
    ]
    config = AnalysisConfig(
        project_id=ref.project_id,
        video_id=ref.video_id,
        prompt=temporal_plugins.prompt,
        min_confidence=temporal_plugins.min_confidence,
    )
    cache = ResultCache(store, ref, enabled=costs.use_cache)
    sha = info["sha256"]
    estimate = estimate_run_cost(
        source=source, chunks=chunks, plugins=plugins, config=config, cache=cache, content_sha256=sha
    )
    costs.check_budget(
        project_id=ref.project_id,
        video_id=ref.video_id,
        estimate_usd=sum(estimate.values()),
        what="temporal analysis (" + ", ".join(f"{k} ${v:.4f}" for k, v in estimate.items()) + ")",
    )
    # keyframes need a decode; if every frame plugin is cached and the keyframes match this source, skip it
    old_index = (
        store.get_json(ref.key("keyframes", KEYFRAME_INDEX))
        if store.exists(ref.key("keyframes", KEYFRAME_INDEX))
        else None
    )
    frame_plugins = [p for p in plugins if isinstance(p, FramePlugin)]
    hits = cached_plugins(
        source=source, chunks=chunks, plugins=frame_plugins, config=config, cache=cache, content_sha256=sha
    )
    all_cached = bool(frame_plugins) and len(hits) == len(frame_plugins)
    reuse_keyframes = bool(
        costs.use_cache and all_cached and isinstance(old_index, dict) and old_index.get("source_sha256") == sha
    )
    selector = None if reuse_keyframes else KeyframeSelector()
    t0 = time.perf_counter()
    try:
        result = analyze_video(
            source=source,
            chunks=chunks,
            plugins=plugins,
            keyframes=selector,
            config=config,
            policy=temporal_plugins.policy(),
            cache=cache,
            content_sha256=sha,
            make_plugin=temporal_plugins.factory(),
            on_progress=lambda pct, what: report(context, IngestionPhase.ANALYZING_TEMPORAL, pct * 0.95, step=what),
        )
    except MediaError as exc:  # unreadable media is permanent; a decoding process that died may not be
        raise dg.Failure(description=str(exc), allow_retries=getattr(exc, "retryable", False)) from exc
    elapsed = time.perf_counter() - t0
    decode = result.decode.as_dict()
    if not result.frames_decoded:  # every frame plugin cached: what the last decode of this very file met
        old = optional_json(store, ref.key("metadata", MARKERS))
        decode = old.get("decode", {}) if isinstance(old, dict) and old.get("source_sha256") == sha else {}
    if storage.strict() and (decode.get("errors") or decode.get("corrupt")):
        raise dg.Failure(
            description=f"Cannot use {info['key']} (strict): " + source_warnings(info, decode)[0], allow_retries=False
        )
    for run in result.failed:
        context.log.error(f"plugin {run.plugin} failed: {run.error}")
    ok_names = {r.plugin for r in result.runs if r.status == "ok"}
    if plugins and not ok_names:
        raise dg.Failure(
            description="every temporal plugin failed: " + "; ".join(f"{r.plugin}: {r.error}" for r in result.failed),
            allow_retries=any(r.retryable for r in result.failed),
        )  # throttled or timed out: the step retry policy tries again

    # keyframes: write JPEGs, then the index, then remove stale ones
    if selector is None:
        frames = [Keyframe.model_validate(k) for k in old_index["keyframes"]]
    else:
        frames = []
        for shot, cand in selector.select(result.markers, info["duration_s"]):
            k = ref.key("keyframes", f"shot{shot:04d}_{int(round(cand.time_s * 1000)):09d}ms.jpg")
            store.put_bytes(k, cand.jpeg)
            frames.append(
                Keyframe(
                    time_s=round(cand.time_s, 3), uri=store.uri(k), shot_index=shot, sharpness=round(cand.sharpness, 1)
                )
            )
    kf_uri = store.put_json(
        ref.key("keyframes", KEYFRAME_INDEX), {"source_sha256": sha, "keyframes": [f.model_dump() for f in frames]}
    )
    keep = {ref.key("keyframes", Path(f.uri).name) for f in frames} | {ref.key("keyframes", KEYFRAME_INDEX)}
    for stale in [k for k in store.list(ref.prefix + "keyframes/") if k not in keep]:
        store.delete(stale)

    cost = result.cost_by_plugin
    ledger = costs.ledger()
    for run in result.runs:
        ledger.record(
            run_id=context.run_id,
            asset="temporal_markers",
            project_id=ref.project_id,
            video_id=ref.video_id,
            plugin=run.plugin,
            usd=run.cost_usd,
            media_seconds=info["duration_s"],
            cached=run.cached,
        )
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
    yield dg.MaterializeResult(
        asset_key="keyframes",
        metadata={
            "keyframes": dg.IntMetadataValue(len(frames)),
            "index_uri": dg.MetadataValue.url(kf_uri),
            "video_seconds": float_meta(info["duration_s"]),
            **cost_meta({}),
        },
    )
    yield dg.MaterializeResult(
        asset_key="temporal_markers",
        metadata={
            "markers": dg.IntMetadataValue(len(result.markers)),
            "markers_by_type": dg.JsonMetadataValue(by_type),
            "plugins": dg.JsonMetadataValue([r.as_dict() for r in result.runs]),
            "plugins_failed": dg.IntMetadataValue(len(result.failed)),
            "warnings": warnings_md(source_warnings(info, decode) + run_warnings([r.as_dict() for r in result.runs])),
            "decode_errors": dg.IntMetadataValue(decode.get("errors", 0) + decode.get("corrupt", 0)),
            "markers_clamped": dg.IntMetadataValue(sum(r.clamped for r in result.runs)),
            "markers_dropped": dg.IntMetadataValue(sum(r.dropped for r in result.runs)),
            "plugins_fell_back": dg.JsonMetadataValue(
                {r.plugin: r.fallback_for for r in result.runs if r.fallback_for}
            ),
            "cache/hits": dg.IntMetadataValue(sum(1 for r in result.runs if r.cached)),
            "cache/misses": dg.IntMetadataValue(sum(1 for r in result.runs if not r.cached)),
            "cost/estimate_usd": float_meta(sum(estimate.values())),
            "frames_decoded": dg.IntMetadataValue(result.frames_decoded),
            "decode_segments": dg.IntMetadataValue(result.decode_segments),
            "speed_x_realtime": float_meta(round(fps_x, 2)),
            "markers_uri": dg.MetadataValue.url(mk_uri),
            "video_seconds": float_meta(info["duration_s"]),
            **cost_meta(cost),
        },
    )


@dg.asset(
    partitions_def=videos_partitions,
    group_name="analysis",
    kinds={"python", "json"},
    deps=[audio],
    description="Timed transcript (segments, words, language) from the selected transcription plugin.",
)
def transcript(
    context: dg.AssetExecutionContext,
    storage: VidintelStorage,
    transcription: TranscriptionResource,
    costs: CostControls,
) -> dg.MaterializeResult:
    ref = video_ref(context)
    store = storage.for_video(ref)[0]
    info = need_json(store, ref.key("metadata", PROBE), "source_video's probe")
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
        config = transcription.config().model_copy(
            update={"project_id": ref.project_id, "video_id": ref.video_id, "audio_uri": store.uri(audio_key)}
        )
        cache = ResultCache(store, ref, enabled=costs.use_cache)
        sha = file_sha256(audio_path)
        key = cache_key(content_sha256=sha, plugin=chain[0], config=config)
        hit = cache.get(chain[0].name, key)
        if hit is not None:
            result, cached = TranscriptionResult.model_validate(hit), True
            by_plugin[chain[0].name] = 0.0
            runs = [
                {
                    "plugin": chain[0].name,
                    "version": chain[0].info.plugin_version,
                    "status": "ok",
                    "cached": True,
                    "cost_usd": 0.0,
                }
            ]
        else:
            estimate = chain[0].estimate_cost(info["duration_s"])
            costs.check_budget(
                project_id=ref.project_id,
                video_id=ref.video_id,
                estimate_usd=estimate,
                what=f"transcription with {chain[0].name} (${estimate:.4f})",
            )
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
            cache.put(
                winner.name, cache_key(content_sha256=sha, plugin=winner, config=config), result.model_dump(mode="json")
            )
            for r in plugin_runs:
                if r.status != "ok":
                    context.log.error(f"transcription plugin {r.plugin} failed: {r.error}")
        clamped = clamp_transcript(result, info["duration_s"])
        if clamped:
            context.log.warning(
                f"{clamped} word(s) or segment(s) past the video's end ({info['duration_s']:.2f} s) dropped "
                "or cut there"
            )
        report(context, IngestionPhase.TRANSCRIBING_AUDIO, 100, words=result.word_count)
        ledger = costs.ledger()
        for name, usd in by_plugin.items():
            ledger.record(
                run_id=context.run_id,
                asset="transcript",
                project_id=ref.project_id,
                video_id=ref.video_id,
                plugin=name,
                usd=usd,
                media_seconds=info["duration_s"],
                cached=cached,
            )
    doc = result.model_dump() | {
        "cost": CostSummary(total_usd=sum(by_plugin.values()), by_plugin=by_plugin).model_dump(),
        "plugin_runs": runs,
    }
    uri = store.put_json(ref.key("transcripts", TRANSCRIPT), doc)
    return dg.MaterializeResult(
        metadata={
            "transcript_uri": dg.MetadataValue.url(uri),
            "language": result.language or "",
            "segments": dg.IntMetadataValue(len(result.segments)),
            "words": dg.IntMetadataValue(result.word_count),
            "plugins": dg.JsonMetadataValue(runs),
            "cache/hits": dg.IntMetadataValue(int(cached)),
            "excerpt": dg.MetadataValue.text(result.text[:300]),
            "video_seconds": float_meta(info["duration_s"]),
            **cost_meta(by_plugin),
        }
    )


@dg.asset(
    partitions_def=videos_partitions,
    group_name="analysis",
    kinds={"python", "json"},
    deps=["temporal_markers", transcript],
    description="Moments matching the run's prompt (temporal_plugins.prompt), from plugins that read the other results "
    "(transcript, on-screen text, labels) rather than the media.",
)
def prompt_markers(
    context: dg.AssetExecutionContext,
    storage: VidintelStorage,
    temporal_plugins: TemporalPluginsResource,
) -> dg.MaterializeResult:
    ref = video_ref(context)
    store = storage.for_video(ref)[0]
    info = need_json(store, ref.key("metadata", PROBE), "source_video's probe")
    plugins = [p for p in create_temporal_plugins(temporal_plugins) if p.info.uses_results]
    prompt = temporal_plugins.prompt or ""
    markers: list[TemporalMarker] = []
    runs: list[dict[str, Any]] = []
    cost: dict[str, float] = {}
    if plugins and prompt.strip():
        found = need_json(store, ref.key("metadata", MARKERS), "temporal_markers")["markers"]
        tr = need_json(store, ref.key("transcripts", TRANSCRIPT), "transcript")
        source = ChunkInfo(
            project_id=ref.project_id,
            video_id=ref.video_id,
            path=str(store.uri(info["key"])),
            uri=store.uri(info["key"]),
            start_s=0.0,
            end_s=info["duration_s"],
            markers=[TemporalMarker.model_validate(m) for m in found],
            transcript=TranscriptionResult.model_validate(
                {k: v for k, v in tr.items() if k not in ("cost", "plugin_runs")}
            ),
        )
        config = AnalysisConfig(
            project_id=ref.project_id,
            video_id=ref.video_id,
            prompt=prompt,
            min_confidence=temporal_plugins.min_confidence,
        )
        result = analyze_video(
            source=source,
            chunks=[source],
            plugins=plugins,
            config=config,
            policy=temporal_plugins.policy(),
            make_plugin=temporal_plugins.factory(),
        )
        for run in result.failed:
            context.log.error(f"plugin {run.plugin} failed: {run.error}")
        if not any(r.status == "ok" for r in result.runs):
            raise dg.Failure(
                description="every prompt plugin failed: " + "; ".join(f"{r.plugin}: {r.error}" for r in result.failed),
                allow_retries=any(r.retryable for r in result.failed),
            )
        markers, runs, cost = result.markers, [r.as_dict() for r in result.runs], result.cost_by_plugin
    elif plugins:
        context.log.info("no prompt given (temporal_plugins.prompt): no prompt markers")
    uri = store.put_json(
        ref.key("metadata", PROMPT_MARKERS),
        {
            "prompt": prompt,
            "markers": [m.model_dump() for m in markers],
            "plugins": runs,
            "cost": CostSummary(total_usd=round(sum(cost.values()), 6), by_plugin=cost).model_dump(),
        },
    )
    return dg.MaterializeResult(
        metadata={
            "prompt": prompt,
            "markers": dg.IntMetadataValue(len(markers)),
            "best_match": dg.MetadataValue.text(
                markers[0].attributes.get("matched", markers[0].label) if markers else ""
            ),
            "plugins": dg.JsonMetadataValue(runs),
            "markers_uri": dg.MetadataValue.url(uri),
            **cost_meta(cost),
        }
    )
