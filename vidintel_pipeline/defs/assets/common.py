"""What the per-video assets share: the partition's video, required and optional inputs, typed metadata, cost and
warning entries."""

from typing import Any, Iterable, Optional

import cv2  # noqa: F401  (imported early so the OpenCV thread setting in media.frames applies)
import dagster as dg

from vidintel.resources import CostControls, TemporalPluginsResource
from vidintel_pipeline.plugin_api.contracts import (
    PluginError,
)
from vidintel_pipeline.storage.layout import VIDEO_EXTENSIONS, InvalidIdError, VideoRef
from vidintel_pipeline.storage.stores import StorageError, Store


def video_ref(context: dg.AssetExecutionContext) -> VideoRef:
    try:
        return VideoRef.from_partition_key(context.partition_key)
    except InvalidIdError as exc:
        raise dg.Failure(description=f"Bad partition key: {exc}", allow_retries=False) from exc


def need_json(store: Store, key: str, what: str) -> Any:
    try:
        return store.get_json(key)
    except StorageError as exc:
        raise dg.Failure(
            description=f"{what} is missing ({exc}); materialize the upstream assets first.", allow_retries=False
        ) from exc


def optional_json(store: Store, key: str) -> Any:
    return store.get_json(key) if store.exists(key) else None


def find_source_key(store: Store, ref: VideoRef) -> str:
    """The video object under ``source/``; the newest if several were dropped there."""
    objs = [o for o in store.list_objects(ref.prefix + "source/") if o.key.lower().endswith(VIDEO_EXTENSIONS)]
    if not objs:
        raise dg.Failure(
            description=f"No video under {store.uri(ref.prefix + 'source/')} for partition {ref.partition_key}. "
            "Add one from the launchpad with the add_video job (a path or s3:// URI, project, video id), drop it in "
            "incoming/{project}/, or run `vidintel ingest PATH --project P`.",
            allow_retries=False,
        )
    return max(objs, key=lambda o: (o.last_modified, o.key)).key


def link(uri: str) -> dg.MetadataValue:
    """A stored object as metadata a browser can act on: a local file as a path (the UI offers to copy it; a
    ``file://`` link from a web page opens nothing), an http(s) URL as a link, anything else (``s3://``) as text."""
    from urllib.parse import unquote, urlparse

    if uri.startswith("file://"):
        return dg.MetadataValue.path(unquote(urlparse(uri).path))
    if uri.startswith(("http://", "https://")):
        return dg.MetadataValue.url(uri)
    return dg.MetadataValue.text(uri)


def float_meta(value: float) -> dg.FloatMetadataValue:
    return dg.FloatMetadataValue(float(value))


def run_warnings(runs: list[dict[str, Any]], kind: str = "plugin") -> list[str]:
    """One line per problem a user must see: a failed plugin with its error, markers clamped or dropped."""
    out = []
    for r in runs:
        if r.get("status", "ok") != "ok":
            out.append(f"{kind} {r['plugin']} failed: {r.get('error', 'no reason given')}")
        if r.get("dropped"):
            out.append(
                f"{kind} {r['plugin']}: {r['dropped']} marker(s) dropped ({'; '.join(r.get('warnings', [])[:1])})"
            )
        if r.get("clamped"):
            out.append(f"{kind} {r['plugin']}: {r['clamped']} marker(s) clamped into the video's time range")
    return out


def source_warnings(info: dict[str, Any], decode: Optional[dict[str, Any]] = None) -> list[str]:
    """A truncated or damaged source, in words: what the header promised against what could be read."""
    out = []
    if info.get("truncated"):
        out.append(
            f"source truncated: {info.get('readable_video_s') or 0:.2f} s of video and "
            f"{info.get('readable_audio_s') or 0:.2f} s of audio readable of "
            f"{info.get('declared_duration_s', 0):.2f} s "
            "declared; everything after is missing"
        )
    if decode and (decode.get("errors") or decode.get("corrupt")):
        out.append(
            f"source damaged: {decode.get('errors', 0)} undecodable packet(s) and {decode.get('corrupt', 0)} "
            f"corrupt frame(s), first at {decode.get('first_error_s', 0) or 0:.2f} s"
        )
    return out


def warnings_md(warnings: list[str]) -> dg.MarkdownMetadataValue:
    return dg.MetadataValue.md("\n".join(f"- **{w}**" for w in warnings) if warnings else "none")


def cost_meta(by_plugin: dict[str, float]) -> dict[str, Any]:
    meta: dict[str, Any] = {"cost/usd": float_meta(round(sum(by_plugin.values()), 6))}
    for name, usd in sorted(by_plugin.items()):
        meta[f"cost/plugin/{name}"] = float_meta(round(usd, 6))
    return meta


def create_temporal_plugins(resource: TemporalPluginsResource) -> list:
    try:
        return resource.create()
    except PluginError as exc:
        raise dg.Failure(description=f"Plugin configuration error: {exc}", allow_retries=False) from exc


def record_spend(
    costs: CostControls,
    context: dg.AssetExecutionContext,
    ref: VideoRef,
    asset: str,
    media_seconds: float,
    spent: Iterable[tuple[str, float, bool]],
) -> None:
    """One cost-ledger row per ``(plugin, usd, cached)`` that ran for ``asset`` in this run."""
    ledger = costs.ledger()
    for plugin, usd, cached in spent:
        ledger.record(
            run_id=context.run_id,
            asset=asset,
            project_id=ref.project_id,
            video_id=ref.video_id,
            plugin=plugin,
            usd=usd,
            media_seconds=media_seconds,
            cached=cached,
        )
