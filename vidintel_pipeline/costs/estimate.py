"""What ingesting (or re-ingesting) a project's videos would cost with the chosen plugins, before anything runs."""

from __future__ import annotations

from typing import Any, Optional

from vidintel_pipeline.errors import UserError


def estimate(
    project: str, video: Optional[str], plugins: Optional[list[str]], transcription: Optional[str]
) -> dict[str, Any]:
    """What ingesting (or re-ingesting) a project's videos would cost with the chosen plugins, before running."""
    import av

    from vidintel.resources import TemporalPluginsResource, TranscriptionResource, VidintelStorage
    from vidintel_pipeline.engine.runner import estimate_run_cost
    from vidintel_pipeline.media import MediaError, probe
    from vidintel_pipeline.media.chunking import keyframe_times, plan_chunk_sets
    from vidintel_pipeline.plugin_api.contracts import AnalysisConfig, ChunkInfo, PluginError
    from vidintel_pipeline.storage.layout import (
        InvalidIdError,
        VideoRef,
        is_source_key,
        validate_id,
        video_id_of,
        videos_prefix,
    )

    try:
        validate_id(project, "project id")
        refs = [VideoRef(project, video)] if video else []
    except InvalidIdError as exc:
        raise UserError(str(exc)) from exc
    store = VidintelStorage().ingest().scoped(project)
    if not refs:
        ids = {video_id_of(k) for k in store.list(videos_prefix(project)) if is_source_key(k)}
        vids = sorted(v for v in ids if v is not None)
        refs = [VideoRef(project, v) for v in vids]
    if not refs:
        raise UserError(f"project {project!r} has no videos in {store!r}")
    temporal = TemporalPluginsResource(plugins=plugins) if plugins else TemporalPluginsResource()
    tr = TranscriptionResource(plugin=transcription) if transcription else TranscriptionResource()
    try:
        temporal_chain, transcriber = temporal.create(), tr.create()
    except PluginError as exc:
        raise UserError(str(exc)) from exc
    rows, total = [], 0.0
    for ref in refs:
        keys = [k for k in store.list(ref.prefix + "source/")]
        if not keys:
            raise UserError(f"no source video for {ref.project_id}/{ref.video_id}")
        # the same chunk sets video_chunks cuts (on the source's real keyframes) and the same costing the assets
        # bill, so the estimate, the materializations and the ledger agree to the cent
        src = store.local_path(keys[0])
        limits = [p.info.max_chunk_duration for p in temporal_chain if p.info.max_chunk_duration]
        try:
            duration = probe(src).duration_s
            sets = plan_chunk_sets(keyframe_times(src), duration, limits, temporal.default_chunk_s)
        except (MediaError, av.error.FFmpegError) as exc:
            raise UserError(str(exc)) from exc
        whole = ChunkInfo(project_id=project, video_id=ref.video_id, path=str(src), start_s=0.0, end_s=duration)
        chunks = {
            limit: [whole.model_copy(update={"index": c.index, "start_s": c.start_s, "end_s": c.end_s}) for c in plans]
            for limit, plans in sets.items()
        }
        by_plugin = estimate_run_cost(
            source=whole, chunks=chunks, plugins=temporal_chain, config=AnalysisConfig(project_id=project)
        )
        by_plugin[transcriber.name] = round(transcriber.estimate_cost(duration), 6)
        usd = round(sum(by_plugin.values()), 6)
        total += usd
        rows.append({"video_id": ref.video_id, "duration_s": duration, "usd": usd, "by_plugin": by_plugin})
    return {
        "project_id": project,
        "videos": rows,
        "total_usd": round(total, 6),
        "plugins": [p.name for p in [*temporal_chain, transcriber]],
        "note": "estimate before running; cached results would cost $0",
    }
