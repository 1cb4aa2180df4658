"""Refresh requirements/lock.txt: every dependency of `.[dev,gpu]`, pinned and hashed (`make lock`).

Resolved with uv against the same indexes pip is configured for here (``pip config list``: find-links and extra
index URLs), for CPython 3.11 on manylinux x86_64. torch resolves to the local CPU wheel pip picks for
``torch==2.13.0``. Install with ``pip install --require-hashes -r requirements/lock.txt`` then
``pip install --no-deps -e .`` (what `make install` does).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]


def pip_config() -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    conf = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        conf[key.split(".", 1)[-1]] = value.strip().strip("'")
    return conf


WHEEL_OK = re.compile(r"-(cp311|py3|py2\.py3)-(cp311|abi3|none)-(any|manylinux[^-]*x86_64)\.whl$")


def add_sibling_hashes(lock: Path, indexes: list[str]) -> int:
    """Add the hashes of every usable file of each pinned version found in local (file://) indexes.

    uv records the files of one index per package; when another index holds a better wheel of the same version
    (soundfile 0.14.0: the manylinux wheel bundles libsndfile, the pure one does not), pip must be allowed to
    pick it, so its hash goes into the lock too. Returns how many hashes were added.
    """
    text, added = lock.read_text(), 0
    for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==([^ \\]+) \\$", text, re.M):
        for index in indexes:
            page = Path(urlparse(index).path) / re.sub(r"[-_.]+", "-", name).lower() / "index.html"
            if urlparse(index).scheme != "file" or not page.is_file():
                continue
            for fname, sha in re.findall(r'href="[^"#]*?([^/"#]+)#sha256=([0-9a-f]{64})"', page.read_text()):
                if f"-{version}-" not in fname or not (fname.endswith(".tar.gz") or WHEEL_OK.search(fname)):
                    continue
                if sha in text:
                    continue
                head = f"{name}=={version} \\\n"
                text = text.replace(head, head + f"    --hash=sha256:{sha} \\\n", 1)
                added += 1
    lock.write_text(text)
    return added


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
        print(f"{add_sibling_hashes(lock, conf.get('extra-index-url', '').split())} hashes added from other indexes")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
