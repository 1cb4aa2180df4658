"""The ``outputs`` group: the merged memory document, its exports and the project's search index."""

from typing import Any

import dagster as dg

from vidintel.resources import CostControls, VidintelStorage
from vidintel_pipeline.defs.assets.analysis import derived_markers, transcript
from vidintel_pipeline.defs.assets.common import (
    cost_meta,
    float_meta,
    link,
    need_json,
    optional_json,
    run_warnings,
    source_warnings,
    video_ref,
    warnings_md,
)
from vidintel_pipeline.defs.checks import EXPORT_CHECKS, MEMORY_CHECKS, exports_check, memory_checks
from vidintel_pipeline.defs.partitions import videos_partitions
from vidintel_pipeline.defs.progress import report
from vidintel_pipeline.engine.runner import merge_markers
from vidintel_pipeline.engine.speakers import assign_speakers
from vidintel_pipeline.plugin_api.contracts import (
    CostSummary,
    IngestionPhase,
    Keyframe,
    MemoryDocument,
    Scene,
    SpeakerTurn,
    TemporalMarker,
    TranscriptionResult,
)
from vidintel_pipeline.storage.layout import (
    DERIVED_MARKERS,
    GPU_MARKERS,
    KEYFRAME_INDEX,
    MARKERS,
    PROBE,
    PROMPT_MARKERS,
    SPEAKERS,
    TRANSCRIPT,
)


def pictures_meta(doc: MemoryDocument, store: Any, ref: Any) -> dict[str, dg.MetadataValue]:
    """The timeline strip and the keyframe contact sheet, inline in the metadata (see outputs/pictures.py)."""
    from pathlib import Path

    from vidintel_pipeline.outputs.pictures import contact_sheet, markdown_image, timeline_preview, timeline_strip

    preview = timeline_preview(doc)  # inline in the metadata table; the others open with a click
    out: dict[str, dg.MetadataValue] = {"timeline_preview": dg.MetadataValue.md(preview)} if preview else {}
    out["timeline"] = dg.MetadataValue.md(markdown_image(timeline_strip(doc), "image/png", "marker timeline"))
    frames = [(k.time_s, store.local_path(ref.key("keyframes", Path(k.uri).name))) for k in doc.keyframes]
    sheet = contact_sheet(frames)
    if sheet:
        out["contact_sheet"] = dg.MetadataValue.md(markdown_image(sheet, "image/jpeg", "keyframes"))
    return out


def plugins_table(plugins: list[dict[str, str]], by_plugin: dict[str, float]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "plugin": p["name"],
                    "kind": p["kind"],
                    "version": p["version"],
                    "status": p["status"],
                    "cost_usd": round(by_plugin.get(p["name"], 0.0), 6),
                }
            )
            for p in plugins
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("plugin", "string"),
                dg.TableColumn("kind", "string"),
                dg.TableColumn("version", "string"),
                dg.TableColumn("status", "string"),
                dg.TableColumn("cost_usd", "float"),
            ]
        ),
    )


@dg.asset(
    partitions_def=videos_partitions,
    group_name="outputs",
    kinds={"json"},
    # not gpu_analysis: ingest_video must be closed under its dependencies (the UI warns of missing upstream data
    # otherwise, and a Celery or k8s executor would send that step to a GPU worker a CPU deployment lacks).
    # memory merges GPU results when they are there; gpu_merge_sensor rebuilds it after each gpu_analysis
    deps=["temporal_markers", "keyframes", transcript, derived_markers],
    check_specs=MEMORY_CHECKS,
    description="The memory document: one merged, searchable timeline of everything found in the video "
    "(gpu_analysis' results included when present).",
)
def memory(context: dg.AssetExecutionContext, storage: VidintelStorage, costs: CostControls) -> dg.MaterializeResult:
    ref = video_ref(context)
    store, out = storage.for_video(ref)
    report(context, IngestionPhase.BUILDING_MEMORY, 0)
    info = need_json(store, ref.key("metadata", PROBE), "source_video's probe")
    markers = need_json(store, ref.key("metadata", MARKERS), "temporal_markers")
    tr = need_json(store, ref.key("transcripts", TRANSCRIPT), "transcript")
    kfs = need_json(store, ref.key("keyframes", KEYFRAME_INDEX), "keyframes")["keyframes"]
    empty: dict[str, Any] = {"markers": [], "plugins": [], "cost": CostSummary(total_usd=0.0).model_dump()}
    prompted = (
        optional_json(store, ref.key("metadata", DERIVED_MARKERS))
        or optional_json(store, ref.key("metadata", PROMPT_MARKERS))  # stored before derived_markers was named
        or empty
    )
    # gpu_analysis' results, when they are for this very source (it runs in the GPU job, or from its asset page)
    gpu = optional_json(store, ref.key("metadata", GPU_MARKERS))
    gpu = gpu if gpu and gpu.get("source_sha256") == info["sha256"] else empty
    speakers = optional_json(store, ref.key("transcripts", SPEAKERS))
    turns = (
        [SpeakerTurn.model_validate(t) for t in speakers["turns"]]
        if speakers and speakers.get("source_sha256") == info["sha256"]
        else []
    )
    by_plugin: dict[str, float] = {}
    for part in (markers["cost"], tr["cost"], prompted["cost"], gpu["cost"]):
        for name, usd in part["by_plugin"].items():
            by_plugin[name] = by_plugin.get(name, 0.0) + usd
    plugins = [
        {"name": r["plugin"], "version": r["version"], "kind": "temporal", "status": r["status"]}
        for r in markers["plugins"] + prompted["plugins"] + gpu["plugins"]
    ]
    plugins += [
        {
            "name": r["plugin"],
            "version": r.get("version", ""),
            "kind": r.get("kind", "transcription"),
            "status": r["status"],
        }
        for r in tr["plugin_runs"]
    ]
    transcript_doc = TranscriptionResult.model_validate(
        {k: v for k, v in tr.items() if k not in ("cost", "plugin_runs")}
    )
    warnings = (
        source_warnings(info, markers.get("decode"))
        + run_warnings(markers["plugins"] + prompted["plugins"] + gpu["plugins"])
        + run_warnings(tr["plugin_runs"], "transcription plugin")
    )
    for w in warnings:
        context.log.warning(w)
    if turns and not any(seg.speaker for seg in transcript_doc.segments):
        transcript_doc = assign_speakers(transcript_doc, turns)
    merged = merge_markers(
        [TemporalMarker.model_validate(m) for m in markers["markers"] + prompted["markers"] + gpu["markers"]]
    )
    doc = MemoryDocument(
        project_id=ref.project_id,
        video_id=ref.video_id,
        duration_s=info["duration_s"],
        source={
            k: info.get(k)
            for k in (
                "key",
                "width",
                "height",
                "fps",
                "fps_rational",
                "timecode",
                "video_codec",
                "has_audio",
                "rotation",
                "size_bytes",
                "truncated",
                "declared_duration_s",
                "readable_video_s",
                "readable_audio_s",
                "video_start_s",
                "audio_offset_s",
            )
        },
        markers=merged,
        scenes=Scene.from_markers(merged, info["duration_s"]),
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
    return dg.MaterializeResult(
        metadata={
            **pictures_meta(doc, store, ref),
            "plugin_runs": plugins_table(plugins, by_plugin),
            "memory_uri": link(uri),
            "dagster/uri": dg.MetadataValue.text(uri),
            "markers": dg.IntMetadataValue(len(doc.markers)),
            "words": dg.IntMetadataValue(doc.transcript.word_count),
            "keyframes": dg.IntMetadataValue(len(doc.keyframes)),
            "plugins": dg.JsonMetadataValue(plugins),
            "warnings": warnings_md(warnings),
            "warning_count": dg.IntMetadataValue(len(warnings)),
            "video_seconds": float_meta(info["duration_s"]),
            "cost/video_total_usd": float_meta(ledger.get_total_cost(video_id=ref.video_id, project_id=ref.project_id)),
            "cost/project_total_usd": float_meta(ledger.get_total_cost(project_id=ref.project_id)),
            **cost_meta(by_plugin),
        },
        check_results=memory_checks(doc, costs.max_usd_per_video),
    )


@dg.asset(
    partitions_def=videos_partitions,
    group_name="outputs",
    kinds={"srt", "csv", "otio"},
    deps=[memory],
    check_specs=EXPORT_CHECKS,
    description="The memory as SRT and WebVTT subtitles, a CSV of markers, JSON, and timelines for editors "
    "(OpenTimelineIO .otio, CMX3600 EDL, FCP 7 XML: one clip per shot at the source's exact rate and timecode), "
    "in exports/.",
)
def exports(context: dg.AssetExecutionContext, storage: VidintelStorage) -> dg.MaterializeResult:
    from vidintel_pipeline.outputs.exports import FORMATS, extension, render, shot_spans
    from vidintel_pipeline.outputs.timeline import timecode_rate

    ref = video_ref(context)
    ingest, out = storage.for_video(ref)
    doc = MemoryDocument.model_validate(need_json(out, ref.memory_key, "memory"))
    source_url = ingest.uri(doc.source["key"]) if doc.source.get("key") else None  # what the timelines point at
    uris, texts = {}, {}
    for fmt in FORMATS:
        key = ref.output_key("exports", f"{ref.video_id}.{extension(fmt)}")
        texts[fmt] = render(doc, fmt, source_url=source_url)
        uris[fmt] = out.put_bytes(key, texts[fmt].encode())
    return dg.MaterializeResult(
        metadata={
            **{f"{fmt}_uri": link(u) for fmt, u in uris.items()},
            "shots": dg.IntMetadataValue(len(shot_spans(doc))),
            "subtitle_segments": dg.IntMetadataValue(len(doc.transcript.segments)),
        },
        check_results=[exports_check(texts, float(timecode_rate(doc)))],
    )


@dg.asset(
    partitions_def=videos_partitions,
    group_name="outputs",
    kinds={"sqlite"},
    deps=[memory],
    description="The project's search index (full text + meaning), brought up to date with this video's memory.",
)
def search_index(context: dg.AssetExecutionContext, storage: VidintelStorage) -> dg.MaterializeResult:
    from vidintel_pipeline.models.embeddings import ModelMissing, default_embedder
    from vidintel_pipeline.outputs.search import sync

    ref = video_ref(context)
    out = storage.for_video(ref)[1]
    try:
        embedder = default_embedder()
    except ModelMissing as exc:
        embedder = None
        context.log.warning(f"semantic search off for this update: {exc}")
    stats = sync(out, ref.project_id, embedder)
    return dg.MaterializeResult(
        metadata={
            "index_uri": link(stats["index_uri"]),
            "videos_in_project": dg.IntMetadataValue(stats["videos"]),
            "entries": dg.IntMetadataValue(stats["entries"]),
            "semantic_entries": dg.IntMetadataValue(stats["semantic_entries"]),
            "reindexed": dg.JsonMetadataValue(stats["reindexed"]),
            "removed": dg.JsonMetadataValue(stats["removed"]),
        }
    )
