"""The ``analysis`` group's speech and derived steps: the transcript, then scene and prompt markers from the results."""

from pathlib import Path
from typing import Any

import dagster as dg

from vidintel.resources import CostControls, TemporalPluginsResource, TranscriptionResource, VidintelStorage
from vidintel_pipeline.defs.assets.common import (
    cost_meta,
    create_temporal_plugins,
    float_meta,
    link,
    need_json,
    record_spend,
    video_ref,
)
from vidintel_pipeline.defs.assets.ingestion import audio
from vidintel_pipeline.defs.partitions import videos_partitions
from vidintel_pipeline.defs.progress import report
from vidintel_pipeline.defs.versions import VERSIONS
from vidintel_pipeline.engine.cache import ResultCache, cache_key, file_sha256
from vidintel_pipeline.engine.runner import analyze_video, transcribe_with_fallbacks
from vidintel_pipeline.plugin_api.contracts import (
    AnalysisConfig,
    ChunkInfo,
    CostSummary,
    IngestionPhase,
    Keyframe,
    PluginError,
    TemporalMarker,
    TranscriptionResult,
    TranscriptSegment,
    Word,
)
from vidintel_pipeline.storage.layout import (
    AUDIO,
    DERIVED_MARKERS,
    KEYFRAME_INDEX,
    MARKERS,
    PROBE,
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
        items: list[TranscriptSegment | Word] = [seg, *kept]
        for item in items:
            if item.end_s > end_s:
                item.end_s, n = end_s, n + 1
        seg.words = kept
        segments.append(seg)
    result.segments = segments
    return n


@dg.asset(
    partitions_def=videos_partitions,
    group_name="analysis",
    kinds={"python", "json"},
    deps=[audio],
    code_version=VERSIONS["transcript"],
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
    result: TranscriptionResult | None
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
            if result is None or winner is None:
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
        record_spend(
            costs, context, ref, "transcript", info["duration_s"], ((n, usd, cached) for n, usd in by_plugin.items())
        )
    doc = result.model_dump() | {
        "cost": CostSummary(total_usd=sum(by_plugin.values()), by_plugin=by_plugin).model_dump(),
        "plugin_runs": runs,
    }
    uri = store.put_json(ref.key("transcripts", TRANSCRIPT), doc)
    return dg.MaterializeResult(
        metadata={
            "transcript_uri": link(uri),
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
    deps=["temporal_markers", "keyframes", transcript],
    code_version=VERSIONS["derived_markers"],
    description="Markers derived from the other results rather than the media: scene changes (local_scenes groups "
    "the shots) and moments matching the run's prompt (local_prompt, temporal_plugins.prompt).",
)
def derived_markers(
    context: dg.AssetExecutionContext,
    storage: VidintelStorage,
    temporal_plugins: TemporalPluginsResource,
    costs: CostControls,
) -> dg.MaterializeResult:
    ref = video_ref(context)
    store = storage.for_video(ref)[0]
    info = need_json(store, ref.key("metadata", PROBE), "source_video's probe")
    plugins = [p for p in create_temporal_plugins(temporal_plugins) if p.info.uses_results]
    prompt = temporal_plugins.prompt or ""
    markers: list[TemporalMarker] = []
    runs: list[dict[str, Any]] = []
    cost: dict[str, float] = {}
    if plugins:
        found = need_json(store, ref.key("metadata", MARKERS), "temporal_markers")["markers"]
        tr = need_json(store, ref.key("transcripts", TRANSCRIPT), "transcript")
        kfs = need_json(store, ref.key("keyframes", KEYFRAME_INDEX), "keyframes")["keyframes"]
        keyframes = []
        for k in kfs:  # the JPEGs on local disk (fetched once from S3)
            kf = Keyframe.model_validate(k)
            key = ref.key("keyframes", Path(kf.uri).name)
            keyframes.append(kf.model_copy(update={"path": str(store.local_path(key))}))
        source = ChunkInfo(
            project_id=ref.project_id,
            video_id=ref.video_id,
            path=str(store.uri(info["key"])),
            uri=store.uri(info["key"]),
            start_s=0.0,
            end_s=info["duration_s"],
            fps=info["fps"],
            width=info["width"],
            height=info["height"],
            markers=[TemporalMarker.model_validate(m) for m in found],
            transcript=TranscriptionResult.model_validate(
                {k: v for k, v in tr.items() if k not in ("cost", "plugin_runs")}
            ),
            keyframes=keyframes,
        )
        config = AnalysisConfig(
            project_id=ref.project_id,
            video_id=ref.video_id,
            prompt=prompt or None,
            min_confidence=temporal_plugins.min_confidence,
        )
        if not prompt.strip() and any("custom_prompt" in p.info.supported_events for p in plugins):
            context.log.info("no prompt given (temporal_plugins.prompt): no prompt markers")
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
                description="every derived-marker plugin failed: "
                + "; ".join(f"{r.plugin}: {r.error}" for r in result.failed),
                allow_retries=any(r.retryable for r in result.failed),
            )
        markers, runs, cost = result.markers, [r.as_dict() for r in result.runs], result.cost_by_plugin
        # every plugin that ran goes into the ledger, at $0 too, so the project report lists it
        ran = {r.plugin for r in result.runs if r.status == "ok"}
        record_spend(
            costs,
            context,
            ref,
            "derived_markers",
            info["duration_s"],
            ((n, cost.get(n, 0.0), False) for n in sorted(ran)),
        )
    uri = store.put_json(
        ref.key("metadata", DERIVED_MARKERS),
        {
            "prompt": prompt,
            "markers": [m.model_dump() for m in markers],
            "plugins": runs,
            "cost": CostSummary(total_usd=round(sum(cost.values()), 6), by_plugin=cost).model_dump(),
        },
    )
    prompted = [m for m in markers if m.type == "custom_prompt"]
    by_type: dict[str, int] = {}
    for m in markers:
        by_type[m.type] = by_type.get(m.type, 0) + 1
    return dg.MaterializeResult(
        metadata={
            "prompt": prompt,
            "markers": dg.IntMetadataValue(len(markers)),
            "markers_by_type": dg.JsonMetadataValue(by_type),
            "scenes": dg.IntMetadataValue(by_type.get("scene_change", 0) + 1),
            "best_match": dg.MetadataValue.text(
                prompted[0].attributes.get("matched", prompted[0].label) if prompted else ""
            ),
            "plugins": dg.JsonMetadataValue(runs),
            "markers_uri": link(uri),
            **cost_meta(cost),
        }
    )
