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
from typing import Iterable, Optional

ID_RE = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")
ID_MAX_LEN = 64
PARTITION_SEP = "__"
VIDEO_FOLDERS = ("source", "chunks", "keyframes", "transcripts", "metadata")
OUTPUT_FOLDERS = ("memories", "compilations", "exports")
PROJECTS_PREFIX = "projects/"
DROP_PREFIX = "incoming/"  # incoming/{project_id}/{file}: dropped files the sensor adopts as videos

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".mxf", ".wmv", ".flv")

# file names inside a video's folders
PROBE = "probe.json"  # metadata/: what source_video read from the container
CHUNK_MANIFEST = "manifest.json"  # chunks/
AUDIO = "audio_16k.wav"  # chunks/: the extracted 16 kHz mono track
KEYFRAME_INDEX = "keyframes.json"  # keyframes/
MARKERS = "markers.json"  # metadata/
DERIVED_MARKERS = "derived_markers.json"  # metadata/: scene changes and prompt matches
PROMPT_MARKERS = "prompt_markers.json"  # metadata/: what derived_markers was called before scene changes (read only)
TRANSCRIPT = "transcript.json"  # transcripts/
SPEAKERS = "speakers.json"  # transcripts/: speaker turns (gpu_analysis)
GPU_MARKERS = "gpu_markers.json"  # metadata/: gpu_analysis' markers
SEARCH_INDEX = "index.sqlite"  # memories/ of the output tree: the project's search index


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
        slug = f"{slug[: ID_MAX_LEN - 9].strip('-')}-{tag}" if slug else f"video-{tag}"
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
            raise InvalidIdError(f"partition key {key!r} is not of the form '<project_id>{PARTITION_SEP}<video_id>'")
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
        return project_prefix(self.project_id)

    def output_key(self, folder: str, name: str) -> str:
        return project_output_key(self.project_id, folder, name)

    @property
    def memory_key(self) -> str:
        return self.output_key("memories", f"{self.video_id}.json")


# project-wide keys -------------------------------------------------------------------------------------
def project_prefix(project_id: str) -> str:
    """``projects/{project_id}/``: everything of one tenant, in either tree (the unit :meth:`Store.scoped` enforces)."""
    return f"{PROJECTS_PREFIX}{validate_id(project_id, 'project id')}/"


def videos_prefix(project_id: str) -> str:
    return project_prefix(project_id) + "videos/"


def project_output_key(project_id: str, folder: str, name: str) -> str:
    """A project-level output (a reel, a search export, the search index) under one of :data:`OUTPUT_FOLDERS`."""
    if folder not in OUTPUT_FOLDERS:
        raise ValueError(f"unknown output folder {folder!r}; expected one of {OUTPUT_FOLDERS}")
    return project_prefix(project_id) + folder + "/" + _check_name(name)


def memory_key(project_id: str, video_id: str) -> str:
    return VideoRef(project_id, video_id).memory_key


def memories_prefix(project_id: str) -> str:
    return project_prefix(project_id) + "memories/"


def memory_keys(keys: Iterable[str], project_id: str) -> dict[str, str]:
    """``{video_id: key}`` of the memory documents among a listing of :func:`memories_prefix`."""
    prefix = memories_prefix(project_id)
    return {
        k[len(prefix) : -5]: k
        for k in keys
        if k.startswith(prefix) and k.endswith(".json") and "/" not in k[len(prefix) :]
    }


def search_index_key(project_id: str) -> str:
    return project_output_key(project_id, "memories", SEARCH_INDEX)


def source_key(ref: VideoRef, file_name: str) -> str:
    """Where a video's source file lives: its own name, flattened to one segment."""
    return ref.key("source", file_name.replace("/", "_"))


def parse_source_key(key: str) -> tuple[Optional[VideoRef], str]:
    """``(ref, "")`` for ``projects/{p}/videos/{v}/source/{file}`` with a video extension, else ``(None, why not)``."""
    parts = key.split("/")
    if len(parts) != 6 or parts[0] + "/" != PROJECTS_PREFIX or parts[2] != "videos" or parts[4] != "source":
        return None, "not under projects/{project}/videos/{video}/source/"
    try:
        ref = VideoRef(parts[1], parts[3])
    except InvalidIdError as exc:
        return None, f"hostile or invalid id: {exc}"
    if not parts[5].lower().endswith(VIDEO_EXTENSIONS):
        return None, f"not a video file (extensions: {', '.join(VIDEO_EXTENSIONS)})"
    return ref, ""


def parse_drop_key(key: str) -> tuple[Optional[VideoRef], str, str]:
    """``(ref, file name, "")`` for a drop ``incoming/{project}/{file}`` (the video id from the file name), else
    ``(None, "", why not)``."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] + "/" != DROP_PREFIX or not parts[2]:
        return None, "", "drops go to incoming/{project_id}/{file}"
    try:
        project = validate_id(parts[1], "project id")
    except InvalidIdError as exc:
        return None, "", str(exc)
    if not parts[2].lower().endswith(VIDEO_EXTENSIONS):
        return None, "", "not a video file"
    return VideoRef(project, slugify(parts[2])), parts[2], ""


def is_source_key(key: str) -> bool:
    """Cheap pre-filter for listings: the key is somewhere below a video's ``source/`` folder."""
    return "/source/" in key


def video_id_of(key: str) -> Optional[str]:
    """The video id in ``projects/{p}/videos/{v}/...``, or None for any other key."""
    parts = key.split("/")
    return parts[3] if len(parts) > 4 and parts[0] + "/" == PROJECTS_PREFIX and parts[2] == "videos" else None


def _check_name(name: str) -> str:
    """File names below a folder: one or more path segments, none empty, '.', '..' or hidden-control."""
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", "..") or any(ord(c) < 32 or c == "\\" for c in part) or len(part) > 255:
            raise InvalidIdError(f"refusing storage name {name!r}")
    return name


def chunk_name(file_name: str, max_chunk_s: float, shortest: bool) -> str:
    """Where a chunk file lives under chunks/: the shortest set at the top (``chunk_00000.mp4``), each longer set
    in a folder named by its limit (``600s/chunk_00000.mp4``)."""
    return file_name if shortest else f"{max_chunk_s:g}s/{file_name}"
