"""The wheel `pip install .` builds (what the Dockerfiles install): every data file the code reads, package names
that cannot collide with other distributions, and a `vidintel demo` that runs from it, outside the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the tracked files (setuptools would reuse a stale build/ in the checkout)."""
    tmp_path = tmp_path_factory.mktemp("wheel")
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
    (built,) = tmp_path.glob("vidintel-*.whl")
    return built


def test_the_wheel_carries_the_price_book_and_sample_media(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    data = [
        p.relative_to(REPO).as_posix()
        for p in (REPO / "vidintel_pipeline").rglob("*")
        if p.is_file() and p.suffix in (".json", ".wav", ".txt") and "__pycache__" not in p.parts
    ]
    assert "vidintel_pipeline/costs/pricebook.json" in data
    missing = [d for d in data if d not in names]
    assert not missing, f"not in {wheel.name}: {missing}"
    installed = {
        "vidintel_pipeline": "vidintel_pipeline",
        "plugins": "vidintel/plugins",
        "resources": "vidintel/resources",
    }
    modules = [
        f"{installed[top]}/{p.relative_to(REPO / top).as_posix()}"
        for top in installed
        for p in (REPO / top).rglob("*.py")
        if "__pycache__" not in p.parts
    ]
    missing = [m for m in modules if m not in names]
    assert not missing, f"modules not in {wheel.name} (add their package to pyproject.toml): {missing}"


def test_plugins_and_resources_install_under_the_vidintel_namespace(wheel):
    tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist() if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"vidintel_pipeline", "vidintel"}  # never a top-level `plugins` or `resources`
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"vidintel/plugins/local_shots.py", "vidintel/resources/storage.py"} <= names
    assert "vidintel/__init__.py" not in names  # a namespace package: other distributions may add to it


def test_vidintel_demo_runs_from_the_installed_wheel(wheel, tmp_path):
    """Installed (not editable) into a fresh venv and run from a folder outside the repository.

    The dependencies come from this test run's environment through a ``.pth`` line: a plain path entry, so that
    environment's editable-install hook (which would map vidintel back to this checkout) never runs.
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    Path(site, "deps-from-the-test-env.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {**os.environ, "VIDINTEL_HOME": str(tmp_path / "home"), "PYTHONPATH": ""}
    env.pop("DAGSTER_HOME", None)
    where = subprocess.run(
        [
            str(py),
            "-c",
            "import vidintel_pipeline, vidintel.plugins, vidintel.resources as r; "
            "print(vidintel_pipeline.__file__); print(r.__file__)",
        ],
        cwd=away,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert all(w.startswith(site) for w in where), where  # the wheel's copy, not this checkout
    demo = subprocess.run(
        [str(venv / "bin" / "vidintel"), "demo"], cwd=away, env=env, capture_output=True, text=True, timeout=600
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "demo finished" in demo.stdout and "markers (" in demo.stdout
    memory = json.loads((tmp_path / "home" / "data/output/projects/demo/memories/sample.json").read_text())
    assert memory["markers"] and memory["transcript"]["segments"]
