"""What ingesting (or re-ingesting) a project's videos would cost with the chosen plugins, before anything runs."""

from __future__ import annotations

from typing import Any, Optional

from vidintel_pipeline.errors import UserError


def estimate(
    project: str, video: Optional[str], plugins: Optional[list[str]], transcription: Optional[str]
) -> dict[str, Any]:
    """What ingesting (or re-ingesting) a project's videos would cost with the chosen plugins, before running."""
    from vidintel.resources import TemporalPluginsResource, TranscriptionResource, VidintelStorage
    from vidintel_pipeline.costs.pricing import chunk_durations
    from vidintel_pipeline.media import MediaError, probe
    from vidintel_pipeline.plugin_api.contracts import PluginError
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
        chain = temporal.create() + [tr.create()]
    except PluginError as exc:
        raise UserError(str(exc)) from exc
    rows, total = [], 0.0
    for ref in refs:
        keys = [k for k in store.list(ref.prefix + "source/")]
        if not keys:
            raise UserError(f"no source video for {ref.project_id}/{ref.video_id}")
        try:
            duration = probe(store.local_path(keys[0])).duration_s
        except MediaError as exc:
            raise UserError(str(exc)) from exc
        by_plugin = {}
        for p in chain:
            limit = p.info.max_chunk_duration
            by_plugin[p.name] = round(sum(p.estimate_cost(d) for d in chunk_durations(duration, limit)), 6)
        usd = round(sum(by_plugin.values()), 6)
        total += usd
        rows.append({"video_id": ref.video_id, "duration_s": duration, "usd": usd, "by_plugin": by_plugin})
    return {
        "project_id": project,
        "videos": rows,
        "total_usd": round(total, 6),
        "plugins": [p.name for p in chain],
        "note": "estimate before running; cached results would cost $0",
    }
