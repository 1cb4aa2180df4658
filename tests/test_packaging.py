"""The wheel `pip install .` builds (what the Dockerfiles install) carries every data file the code reads."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_the_price_book_and_sample_media(tmp_path):
    # built from a copy of the tracked files: setuptools would reuse a stale build/ folder in the checkout
    src = tmp_path / "src"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, src / f)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(src),
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("vidintel-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = [
        p.relative_to(REPO).as_posix()
        for p in (REPO / "vidintel_pipeline").rglob("*")
        if p.is_file() and p.suffix in (".json", ".wav", ".txt") and "__pycache__" not in p.parts
    ]
    assert "vidintel_pipeline/costs/pricebook.json" in data
    missing = [d for d in data if d not in names]
    assert not missing, f"not in {wheel.name}: {missing}"
