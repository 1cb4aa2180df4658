"""The multi-tenant storage layout, and the one place that validates ids and builds keys.

Every key vidintel reads or writes is built here from a validated project id and video id, so a hostile id
(``../x``, an absolute path, control characters) can never address another tenant's prefix::

    {ingest}/projects/{project_id}/videos/{video_id}/{source,chunks,keyframes,transcripts,metadata}/
    {output}/projects/{project_id}/{memories,compilations,exports}/

Partition keys carry both ids as ``{project_id}__{video_id}``; ids cannot contain ``__`` so the split is
unambiguous, and they avoid the characters Dagster forbids in partition keys.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

ID_RE = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")
ID_MAX_LEN = 64
PARTITION_SEP = "__"
VIDEO_FOLDERS = ("source", "chunks", "keyframes", "transcripts", "metadata")
OUTPUT_FOLDERS = ("memories", "compilations", "exports")


class InvalidIdError(ValueError):
    """A project id, video id or partition key that vidintel refuses to use."""


def validate_id(value: str, what: str = "id") -> str:
    if not isinstance(value, str) or not value:
        raise InvalidIdError(f"{what} must be a non-empty string")
    if len(value) > ID_MAX_LEN:
        raise InvalidIdError(f"{what} {value[:20]!r}... is {len(value)} characters long; the limit is {ID_MAX_LEN}")
    if not ID_RE.fullmatch(value):
        raise InvalidIdError(
            f"{what} {value!r} is not allowed: use letters, digits and single '.', '_' or '-' between them "
            "(no '/', '..', spaces, '__' or control characters)"
        )
    return value


def slugify(name: str) -> str:
    """A valid id derived from a file name: ``My Clip (1).MP4`` -> ``my-clip-1``, ``Fête.mov`` -> ``fete``.

    Accents are folded to ASCII. Letters with no ASCII form (``会議.mp4``) would leave nothing, or leave
    two different names the same id, and a second upload would replace the first: such names keep a
    short hash of the original name (``video-1a2b3c4d``, ``2026-1a2b3c4d``).
    """
    stem = name.rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    folded = unicodedata.normalize("NFKD", stem.casefold())
    slug = re.sub(r"[^a-z0-9]+", "-", folded.encode("ascii", "ignore").decode()).strip("-")
    untranslatable = any(ch.isalnum() and not ch.isascii() for ch in folded)  # folded is NFKD: accents are split off
    if untranslatable or not slug:
        tag = hashlib.sha256(stem.encode()).hexdigest()[:8]
        slug = f"{slug[:ID_MAX_LEN - 9].strip('-')}-{tag}" if slug else f"video-{tag}"
    return re.sub(r"-+", "-", slug)[:ID_MAX_LEN].strip("-")


@dataclass(frozen=True)
class VideoRef:
    """A validated (project, video) pair: the unit of partitioning and of tenancy."""

    project_id: str
    video_id: str

    def __post_init__(self) -> None:
        validate_id(self.project_id, "project id")
        validate_id(self.video_id, "video id")

    @property
    def partition_key(self) -> str:
        return f"{self.project_id}{PARTITION_SEP}{self.video_id}"

    @classmethod
    def from_partition_key(cls, key: str) -> "VideoRef":
        if not isinstance(key, str) or key.count(PARTITION_SEP) != 1:
            raise InvalidIdError(
                f"partition key {key!r} is not of the form '<project_id>{PARTITION_SEP}<video_id>'"
            )
        project_id, video_id = key.split(PARTITION_SEP)
        return cls(project_id, video_id)

    # ingestion tree -------------------------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return f"projects/{self.project_id}/videos/{self.video_id}/"

    def key(self, folder: str, name: str) -> str:
        if folder not in VIDEO_FOLDERS:
            raise ValueError(f"unknown video folder {folder!r}; expected one of {VIDEO_FOLDERS}")
        return self.prefix + folder + "/" + _check_name(name)

    # output tree ----------------------------------------------------------------------------------------
    @property
    def output_prefix(self) -> str:
        return f"projects/{self.project_id}/"

    def output_key(self, folder: str, name: str) -> str:
        if folder not in OUTPUT_FOLDERS:
            raise ValueError(f"unknown output folder {folder!r}; expected one of {OUTPUT_FOLDERS}")
        return self.output_prefix + folder + "/" + _check_name(name)

    @property
    def memory_key(self) -> str:
        return self.output_key("memories", f"{self.video_id}.json")


def _check_name(name: str) -> str:
    """File names below a folder: one or more path segments, none empty, '.', '..' or hidden-control."""
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", "..") or any(ord(c) < 32 or c == "\\" for c in part) or len(part) > 255:
            raise InvalidIdError(f"refusing storage name {name!r}")
    return name
