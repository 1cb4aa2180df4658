"""The ``ingestion`` group: the source video probed, its stream-copied chunks and its 16 kHz audio."""

import shutil
from pathlib import Path

import dagster as dg

from vidintel.resources import TemporalPluginsResource, VidintelStorage
from vidintel_pipeline.defs.assets.common import (
    cost_meta,
    create_temporal_plugins,
    find_source_key,
    float_meta,
    link,
    need_json,
    source_warnings,
    video_ref,
    warnings_md,
)
from vidintel_pipeline.defs.partitions import run_tags, videos_partitions
from vidintel_pipeline.defs.progress import report
from vidintel_pipeline.engine.cache import file_sha256
from vidintel_pipeline.media import MediaError, probe
from vidintel_pipeline.media.audio import extract_audio
from vidintel_pipeline.media.chunking import cut_chunks, keyframe_times, plan_chunk_sets
from vidintel_pipeline.plugin_api.contracts import (
    IngestionPhase,
)
from vidintel_pipeline.storage.layout import AUDIO, CHUNK_MANIFEST, PROBE, chunk_name
from vidintel_pipeline.storage.stores import StorageError


# --------------------------------------------------------------------------------------------------------
@dg.asset(
    partitions_def=videos_partitions,
    group_name="ingestion",
    kinds={"video", "pyav"},
    description="The source video as dropped into storage: validated and probed (duration, fps, streams, rotation).",
)
def source_video(context: dg.AssetExecutionContext, storage: VidintelStorage) -> dg.MaterializeResult:
    ref = video_ref(context)
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
    return dg.MaterializeResult(
        metadata={
            "source_uri": link(store.uri(key)),
            "dagster/uri": dg.MetadataValue.text(store.uri(key)),
            "probe_uri": link(uri),
            "video_seconds": float_meta(info.duration_s),
            "size_bytes": dg.IntMetadataValue(info.size_bytes),
            "resolution": f"{info.display_size[0]}x{info.display_size[1]}",
            "fps": float_meta(round(info.fps, 3)),
            "video_codec": info.video_codec or "",
            "has_audio": dg.BoolMetadataValue(info.has_audio),
            "rotation": dg.IntMetadataValue(info.rotation),
            "truncated": dg.BoolMetadataValue(info.truncated),
            "declared_seconds": float_meta(info.declared_duration_s),
            "warnings": warnings_md(warnings),
            "sha256": doc["sha256"],
            **cost_meta({}),
        }
    )


@dg.asset(
    partitions_def=videos_partitions,
    group_name="ingestion",
    kinds={"video", "ffmpeg"},
    deps=[source_video],
    description="Stream-copied chunks (no re-encode), cut at keyframes, no longer than the selected plugins allow.",
)
def video_chunks(
    context: dg.AssetExecutionContext, storage: VidintelStorage, temporal_plugins: TemporalPluginsResource
) -> dg.MaterializeResult:
    ref = video_ref(context)
    store = storage.for_video(ref)[0]
    info = need_json(store, ref.key("metadata", PROBE), "source_video's probe")
    limits = [p.info.max_chunk_duration for p in create_temporal_plugins(temporal_plugins) if p.info.max_chunk_duration]
    src = store.local_path(info["key"])
    sets = plan_chunk_sets(keyframe_times(src), info["duration_s"], limits, temporal_plugins.default_chunk_s)
    max_chunk = min(sets)
    report(context, IngestionPhase.CHUNKING, 0, max_chunk_s=max_chunk)
    ext = Path(info["key"]).suffix.lower() or ".mp4"
    staging = store.staging_dir(ref.prefix + "chunks/")
    stored: dict[float, list[dict]] = {}
    try:
        for limit, plans in sets.items():
            same = next(
                (
                    k
                    for k in stored
                    if [(e["start_s"], e["end_s"]) for e in stored[k]] == [(p.start_s, p.end_s) for p in plans]
                ),
                None,
            )
            if same is not None:  # sparse keyframes: the longer limit cuts at the same places
                stored[limit] = stored[same]
                continue
            out = staging / f"{limit:g}s"
            out.mkdir(parents=True, exist_ok=True)
            try:
                files = cut_chunks(src, plans, out, ext)
            except MediaError as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from exc
            stored[limit] = []
            for plan, f in zip(plans, files, strict=True):
                k = ref.key("chunks", chunk_name(f.name, limit, shortest=limit == max_chunk))
                store.put_file(k, f, move=True)
                stored[limit].append(plan.as_dict() | {"key": k, "size_bytes": store.size(k)})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    entries = stored[max_chunk]
    manifest = {
        "source_key": info["key"],
        "max_chunk_s": max_chunk,
        "method": "stream_copy",
        "chunks": entries,  # the shortest set; "sets" holds every set, one per plugin limit
        "sets": [{"max_chunk_s": limit, "chunks": chunks} for limit, chunks in stored.items()],
    }
    uri = store.put_json(ref.key("chunks", CHUNK_MANIFEST), manifest)
    keep = {e["key"] for chunks in stored.values() for e in chunks}
    keep |= {ref.key("chunks", CHUNK_MANIFEST), ref.key("chunks", AUDIO)}
    for stale in [k for k in store.list(ref.prefix + "chunks/") if k not in keep]:
        store.delete(stale)
    over = sum(1 for e in entries if e["over_limit"])
    if over:
        context.log.warning(
            f"{over} chunk(s) exceed {max_chunk} s: the source's keyframes are too far apart to cut by stream copy"
        )
    report(context, IngestionPhase.CHUNKING, 100, chunks=len(entries))
    return dg.MaterializeResult(
        metadata={
            "manifest_uri": link(uri),
            "chunks": dg.IntMetadataValue(len(entries)),
            "max_chunk_s": float_meta(max_chunk),
            # one set per plugin limit, as each provider bills its own requests
            "chunk_sets": dg.MetadataValue.json({f"{limit:g}s": len(c) for limit, c in stored.items()}),
            "over_limit_chunks": dg.IntMetadataValue(over),
            "video_seconds": float_meta(info["duration_s"]),
            **cost_meta({}),
        }
    )


@dg.asset(
    partitions_def=videos_partitions,
    group_name="ingestion",
    kinds={"audio", "ffmpeg"},
    deps=[source_video],
    description="The audio track, extracted once as 16 kHz mono PCM WAV for speech and silence detection.",
)
def audio(context: dg.AssetExecutionContext, storage: VidintelStorage) -> dg.MaterializeResult:
    ref = video_ref(context)
    store = storage.for_video(ref)[0]
    info = need_json(store, ref.key("metadata", PROBE), "source_video's probe")
    key = ref.key("chunks", AUDIO)
    if not info["has_audio"]:
        store.delete(key)
        context.log.info("video has no audio track: transcript and silence detection will be empty")
        return dg.MaterializeResult(metadata={"has_audio": dg.BoolMetadataValue(False), **cost_meta({})})
    staging = store.staging_dir(ref.prefix + "chunks/")
    try:
        extract_audio(store.local_path(info["key"]), staging / AUDIO, offset_s=info.get("audio_offset_s", 0.0))
        uri = store.put_file(key, staging / AUDIO, move=True)
    except MediaError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dg.MaterializeResult(
        metadata={
            "has_audio": dg.BoolMetadataValue(True),
            "audio_uri": link(uri),
            "sample_rate": dg.IntMetadataValue(16000),
            "video_seconds": float_meta(info["duration_s"]),
            **cost_meta({}),
        }
    )
