"""Refresh requirements/lock.txt: every dependency of `.[dev,gpu]`, pinned and hashed (`make lock`).

Resolved with uv against the same indexes pip is configured for here (``pip config list``: find-links and extra
index URLs), for CPython 3.11 on manylinux x86_64. torch resolves to the local CPU wheel pip picks for
``torch==2.13.0``. Install with ``pip install --require-hashes -r requirements/lock.txt`` then
``pip install --no-deps -e .`` (what `make install` does).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pip_config() -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    conf = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        conf[key.split(".", 1)[-1]] = value.strip().strip("'")
    return conf


def main() -> int:
    conf = pip_config()
    args = []
    for url in conf.get("extra-index-url", "").split():
        args += ["--extra-index-url", url]
    for link in conf.get("find-links", "").split():
        args += ["--find-links", link]
    cmd = [
        str(Path(sys.executable).parent / "uv"),
        "pip",
        "compile",
        "pyproject.toml",
        "--extra",
        "dev",
        "--extra",
        "gpu",
        "--generate-hashes",
        "--python-version",
        "3.11",
        "--python-platform",
        "x86_64-manylinux_2_28",
        "--index-strategy",
        "unsafe-best-match",
        "--no-header",
        "-o",
        "requirements/lock.txt",
        *args,
    ]
    if conf.get("constraint"):
        cmd += ["-c", conf["constraint"]]  # this machine's pip constraints, as pip itself would apply them
    print(" ".join(cmd), flush=True)
    rc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL).returncode
    if rc == 0:
        lock = ROOT / "requirements" / "lock.txt"
        head = (
            "# `make lock` (scripts/lock.py) writes this file: every dependency of .[dev,gpu], pinned and hashed.\n"
            "# Installed by `make install`: pip install --require-hashes -r requirements/lock.txt.\n"
        )
        lock.write_text(head + lock.read_text())
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
