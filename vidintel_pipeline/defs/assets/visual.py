"""The ``analysis`` group's picture step: keyframes and temporal markers from one decode of the video."""

import time
from pathlib import Path

import dagster as dg

from vidintel.resources import CostControls, TemporalPluginsResource, VidintelStorage
from vidintel_pipeline.defs.assets.common import (
    cost_meta,
    create_temporal_plugins,
    float_meta,
    link,
    need_json,
    optional_json,
    record_spend,
    run_warnings,
    source_warnings,
    video_ref,
    warnings_md,
)
from vidintel_pipeline.defs.assets.ingestion import audio, source_video, video_chunks
from vidintel_pipeline.defs.partitions import videos_partitions
from vidintel_pipeline.defs.progress import report
from vidintel_pipeline.defs.versions import VERSIONS
from vidintel_pipeline.engine.cache import ResultCache
from vidintel_pipeline.engine.keyframes import KeyframeSelector
from vidintel_pipeline.engine.runner import analyze_video, cached_plugins, chunk_set_for, estimate_run_cost
from vidintel_pipeline.media import MediaError
from vidintel_pipeline.plugin_api.contracts import (
    AnalysisConfig,
    ChunkInfo,
    CostSummary,
    IngestionPhase,
    Keyframe,
)
from vidintel_pipeline.plugin_api.frame_plugin import FramePlugin
from vidintel_pipeline.storage.layout import (
    AUDIO,
    CHUNK_MANIFEST,
    KEYFRAME_INDEX,
    MARKERS,
    PROBE,
)


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
            code_version=VERSIONS["temporal_markers"],
        ),
        dg.AssetSpec(
            "temporal_markers",
            group_name="analysis",
            kinds={"python", "opencv"},
            deps=[source_video, video_chunks, audio],
            description="Shot boundaries, technical cues, faces and more, from the selected temporal plugins.",
            code_version=VERSIONS["temporal_markers"],
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
    ]  # those run in derived_markers
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
    # one chunk set per plugin limit (video_chunks); a set's files are fetched (from S3) only if a plugin reads it
    sets = {s["max_chunk_s"]: s["chunks"] for s in manifest.get("sets", [])} or {
        manifest["max_chunk_s"]: manifest["chunks"]
    }
    read = {
        chunk_set_for(sets, limit)
        for limit in (p.info.max_chunk_duration for p in plugins)
        if limit is not None and limit < info["duration_s"]
    }
    chunks = {
        limit: [
            ChunkInfo(
                index=i,
                path=str(store.local_path(c["key"])) if limit in read else store.uri(c["key"]),
                uri=store.uri(c["key"]),
                start_s=c["start_s"],
                end_s=c["end_s"],
                **common,
            )
            for i, c in enumerate(entries)
        ]
        for limit, entries in sets.items()
    }
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
        assert isinstance(old_index, dict)  # reuse_keyframes checked it
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
    record_spend(
        costs,
        context,
        ref,
        "temporal_markers",
        info["duration_s"],
        ((r.plugin, r.cost_usd, r.cached) for r in result.runs),
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
            "index_uri": link(kf_uri),
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
            "markers_uri": link(mk_uri),
            "video_seconds": float_meta(info["duration_s"]),
            **cost_meta(cost),
        },
    )
