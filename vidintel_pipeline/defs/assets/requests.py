"""Per-project outputs made on request: search results and highlight reels, with their config in the launchpad.

Unlike the per-video chain these are not partitioned: each run answers one request (a project and a
query) given as run config, so the same asset's materializations form a history of requests, each with
the URIs it wrote. ``vidintel search`` answers from the index directly (fast, nothing written);
``vidintel compile`` runs the ``compile_reel`` job, so reels show up in the UI with their lineage.
"""

from typing import Any, Literal

import dagster as dg
from pydantic import Field

from vidintel.resources import VidintelStorage
from vidintel_pipeline.defs.assets.common import link
from vidintel_pipeline.defs.assets.outputs import search_index
from vidintel_pipeline.outputs.reels import CompileError, compile_reel, reel_name
from vidintel_pipeline.storage.layout import InvalidIdError, project_output_key, validate_id
from vidintel_pipeline.storage.stores import StorageError


class SearchConfig(dg.Config):
    project_id: str = Field(description="The project to search.")
    query: str = Field(description="Words or a description of the moment.")
    mode: Literal["hybrid", "text", "semantic"] = "hybrid"
    limit: int = Field(default=10, ge=1, le=200)


class CompileConfig(dg.Config):
    project_id: str = Field(description="The project whose videos the reel is cut from.")
    query: str = Field(default="", description="Search query choosing the moments (or use marker_type).")
    marker_type: str = Field(
        default="", description="Instead of a query: every marker of this type, e.g. text_in_video."
    )
    label: str = Field(default="", description="With marker_type: only markers whose label contains this.")
    max_seconds: float = Field(default=60.0, gt=0, description="The reel's length limit.")
    mode: Literal["hybrid", "text", "semantic"] = "hybrid"
    pad_s: float = Field(default=0.5, ge=0, description="Seconds added before and after each moment.")


def _embedder(context: dg.AssetExecutionContext, mode: str):
    from vidintel_pipeline.models.embeddings import ModelMissing, default_embedder

    if mode == "text":
        return None
    try:
        return default_embedder()
    except ModelMissing as exc:
        if mode == "semantic":
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        context.log.warning(f"words only: {exc}")
        return None


def _project(project_id: str) -> str:
    try:
        return validate_id(project_id, "project id")
    except InvalidIdError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


THUMBNAILS = 20  # the first moments get a picture: ~4 kB each in the run's metadata


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def thumbnails(storage: VidintelStorage, project: str, moments: list, log: Any) -> dict[int, str]:
    """Markdown images, by moment index: each moment's video's keyframe nearest its middle. A video whose keyframe
    index or pictures cannot be read gets none (logged), and the results still land."""
    from pathlib import Path

    from vidintel_pipeline.outputs.pictures import markdown_image, nearest_keyframe, thumbnail
    from vidintel_pipeline.storage.layout import KEYFRAME_INDEX, VideoRef

    frames: dict[str, list[tuple[float, str]]] = {}
    out: dict[int, str] = {}
    for i, m in enumerate(moments):
        try:
            ref = VideoRef(project, m.video_id)
            store = storage.for_video(ref)[0]
            if m.video_id not in frames:
                index = store.get_json(ref.key("keyframes", KEYFRAME_INDEX))["keyframes"]
                frames[m.video_id] = [(k["time_s"], Path(k["uri"]).name) for k in index]
            name = nearest_keyframe(frames[m.video_id], (m.start_s + m.end_s) / 2)
            data = thumbnail(store.local_path(ref.key("keyframes", name))) if name else b""
        except (StorageError, InvalidIdError, KeyError, OSError) as exc:
            log.warning(f"no picture for {m.video_id} at {m.start_s:.1f} s: {exc}")
            frames.setdefault(m.video_id, [])
            continue
        if data:
            out[i] = markdown_image(data, "image/jpeg", f"{m.video_id} {m.start_s:.1f}s")
    return out


@dg.asset(
    group_name="requests",
    kinds={"sqlite", "json"},
    deps=[search_index],
    description="Moments matching a query across a project's videos (run config: project_id, query), as "
    "JSON in exports/.",
)
def search_results(
    context: dg.AssetExecutionContext, config: SearchConfig, storage: VidintelStorage
) -> dg.MaterializeResult:
    from vidintel_pipeline.outputs.search import search

    project = _project(config.project_id)
    out = storage.output().scoped(project)
    moments = search(
        out,
        project,
        config.query,
        limit=config.limit,
        mode=config.mode,
        embedder=_embedder(context, config.mode),
        refresh=True,
    )
    name = reel_name(config.query, {"mode": config.mode, "limit": config.limit})
    uri = out.put_json(
        project_output_key(project, "exports", f"search-{name}.json"),
        {"project_id": project, "query": config.query, "mode": config.mode, "moments": [m.as_dict() for m in moments]},
    )
    pictures = thumbnails(storage, project, moments[:THUMBNAILS], context.log)
    rows = ["| picture | video | start | end | kind | text | why |", "|---|---|---|---|---|---|---|"]
    rows += [
        f"| {pictures.get(i, '')} | {m.video_id} | {m.start_s:.2f} | {m.end_s:.2f} | {m.kind} | "
        f"{_cell(m.text[:80])} | {_cell(m.why)} |"
        for i, m in enumerate(moments)
    ]
    return dg.MaterializeResult(
        metadata={
            "project_id": project,
            "query": config.query,
            "moments": dg.IntMetadataValue(len(moments)),
            "results": dg.MetadataValue.md("\n".join(rows)),
            "results_uri": link(uri),
        }
    )


@dg.asset(
    group_name="requests",
    kinds={"mp4", "ffmpeg"},
    deps=[search_index],
    description="A highlight reel of the moments a query (or a marker filter) finds, in compilations/ with "
    "a JSON manifest.",
)
def compilation(
    context: dg.AssetExecutionContext, config: CompileConfig, storage: VidintelStorage
) -> dg.MaterializeResult:
    project = _project(config.project_id)
    try:
        reel = compile_reel(
            storage.ingest().scoped(project),
            storage.output().scoped(project),
            project,
            query=config.query,
            marker_type=config.marker_type,
            label=config.label,
            max_seconds=config.max_seconds,
            mode=config.mode,
            pad_s=config.pad_s,
            embedder=_embedder(context, config.mode) if config.query else None,
        )
    except (CompileError, StorageError) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    m = reel.manifest()
    return dg.MaterializeResult(
        metadata={
            "project_id": project,
            "query": reel.query,
            "name": reel.name,
            "reel_uri": link(reel.uri),
            "manifest_uri": link(reel.manifest_uri),
            "timeline_uri": link(reel.timeline_uri),
            "duration_s": dg.FloatMetadataValue(round(reel.duration_s, 3)),
            "clips": dg.IntMetadataValue(len(reel.clips)),
            "method": reel.method,
            "copied_s": dg.FloatMetadataValue(m["copied_s"]),
            "reencoded_s": dg.FloatMetadataValue(m["reencoded_s"]),
            "sources": dg.JsonMetadataValue(sorted({c.video_id for c in reel.clips})),
        }
    )
