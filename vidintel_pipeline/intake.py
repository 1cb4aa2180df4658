"""How a video enters vidintel, shared by ``vidintel ingest`` and the sensor: checked, stored, given a partition.

The CLI stores a file the user names (:func:`check_local_file`, :func:`store_source`); the sensor adopts a
file dropped in ``incoming/{project}/`` (:func:`adopt_drop`). Either way the video ends up alone under its
``source/`` folder (re-ingesting replaces it) and its ``{project}__{video}`` partition is registered.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

from vidintel_pipeline.errors import UserError
from vidintel_pipeline.media import MediaError, ffmpeg_exe, probe
from vidintel_pipeline.storage.layout import InvalidIdError, VideoRef, slugify, source_key
from vidintel_pipeline.storage.stores import StorageError, Store

if TYPE_CHECKING:
    import dagster as dg

    from vidintel.resources import VidintelStorage


def check_local_file(
    path: str, project: str, video_id: Optional[str], storage: "VidintelStorage", *, probed: bool = False
) -> tuple[VideoRef, Path]:
    """The video's ref and file, or a :class:`UserError` saying why it cannot be ingested, before any work.
    ``probed``: the caller has just checked the file (a batch checks every file first): not probed again.

    The file the user names is read as given, a link followed as ``cp`` would (they can read it anyway); the
    store side never follows a link (:mod:`vidintel_pipeline.storage.local`).
    """
    src = Path(path)
    if not src.exists():
        raise UserError(f"{path}: no such file")
    if not src.is_file():  # a FIFO would block the copy; a folder, socket or device is no video either
        raise UserError(f"{path}: not a regular file")
    try:
        ref = VideoRef(project, video_id or slugify(src.name))
    except InvalidIdError as exc:
        raise UserError(str(exc)) from exc
    try:
        storage.check_size(src.name, src.stat().st_size)
        ffmpeg_exe()  # an ffmpeg too old for the chunking and audio steps: say so before any work
        if not probed:
            probe(src)  # refuse a broken file before it touches storage or the instance
    except (MediaError, StorageError) as exc:
        raise UserError(f"not ingested: {exc}") from exc
    return ref, src


def _only_source(store: Store, ref: VideoRef, key: str) -> None:
    for other in [k for k in store.list(ref.prefix + "source/") if k != key]:
        store.delete(other)  # one source per video id: re-ingesting replaces it


def store_source(store: Store, ref: VideoRef, src: Path) -> str:
    """Copy a local file in as the video's only source; returns its key."""
    key = source_key(ref, src.name)
    try:
        store.put_file(key, src)
    except StorageError as exc:
        raise UserError(f"not ingested: {exc}") from exc
    _only_source(store, ref, key)
    return key


def adopt_drop(store: Store, drop_key: str, ref: VideoRef, name: str) -> str:
    """Move a dropped object in as the video's only source (a server-side copy on S3); returns its key.

    The local store reads the drop by descriptor and refuses a link or FIFO swapped in since the listing;
    deleting the drop removes the name in ``incoming/``, never what a link there points at.
    """
    key = source_key(ref, name)
    store.copy(drop_key, key)
    store.delete(drop_key)
    _only_source(store, ref, key)
    return key


def register(instance: "dg.DagsterInstance", refs: Iterable[VideoRef]) -> list[str]:
    """Add the videos' partitions (those not there yet) to the instance; returns the keys added."""
    from vidintel_pipeline.defs.partitions import VIDEOS

    keys = {r.partition_key for r in refs}
    if len(keys) <= 20:  # one indexed lookup each, not every key the instance has (thousands, after a backlog)
        new = sorted(k for k in keys if not instance.has_dynamic_partition(VIDEOS, k))
    else:
        new = sorted(keys - set(instance.get_dynamic_partitions(VIDEOS)))
    if new:
        instance.add_dynamic_partitions(VIDEOS, new)
    return new


def partition_requests(refs: Iterable[VideoRef]) -> list:
    """The sensor's form of :func:`register`: requests that add the partitions before its runs launch."""
    from vidintel_pipeline.defs.partitions import videos_partitions

    keys = sorted({r.partition_key for r in refs})
    return [videos_partitions.build_add_request(keys)] if keys else []
