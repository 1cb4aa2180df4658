"""Refresh the locks in requirements/ (`make lock`): every dependency pinned and hashed, for CPython 3.11 on
manylinux x86_64.

* ``lock.txt`` (`.[dev,gpu]`, what `make install` and CI install): resolved with uv against the same indexes pip is
  configured for here (``pip config list``: find-links and extra index URLs), so torch is the local CPU wheel pip
  picks for ``torch==2.13.0``. Install with ``pip install --require-hashes -r requirements/lock.txt`` then
  ``pip install --no-deps -e .``.
* ``deploy.txt`` (`.[deploy]`) and ``deploy-gpu.txt`` (`.[deploy,gpu]`), for the Dockerfiles: resolved from PyPI
  alone, held to the versions of ``lock.txt`` (the versions the tests ran), so an image runs what CI tested.

uv keeps the pins already in a lock file unless pyproject.toml asks for something else, so a re-run changes
nothing until a requirement changes.
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


# (file, extras, local indexes?) -- the dev lock may use this machine's wheel folders (the CPU torch wheel);
# the image locks resolve from PyPI alone, which is all a Docker build can reach, so the GPU image's torch is
# PyPI's Linux build, which carries its CUDA libraries as nvidia-* wheels (no CUDA base image needed)
LOCKS = [
    ("requirements/lock.txt", ["dev", "gpu"], True, "every dependency of .[dev,gpu]", "make install and CI"),
    ("requirements/deploy.txt", ["deploy"], False, "every dependency of .[deploy]", "deploy/Dockerfile"),
    (
        "requirements/deploy-gpu.txt",
        ["deploy", "gpu"],
        False,
        "every dependency of .[deploy,gpu]",
        "deploy/Dockerfile.gpu",
    ),
]


def tested_pins() -> Path:
    """lock.txt's versions as constraints for the image locks (local version labels such as +cpu dropped).

    triton is left free: PyPI's CUDA build of torch 2.13.0 pins triton 3.7.1, while the CPU wheel pins none and
    lock.txt holds the newest that openai-whisper accepts.
    """
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^ \\+]+)", (ROOT / "requirements" / "lock.txt").read_text(), re.M)
    pins = [(n, v) for n, v in pins if n != "triton"]
    out = ROOT / "build" / "tested-pins.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text("".join(f"{n}=={v}\n" for n, v in pins))
    return out


def compile_lock(out: str, extras: list[str], local: bool, conf: dict[str, str]) -> int:
    args = []
    if local:
        for url in conf.get("extra-index-url", "").split():
            args += ["--extra-index-url", url]
        for link in conf.get("find-links", "").split():
            args += ["--find-links", link]
    else:
        args += ["--index-url", "https://pypi.org/simple", "--no-config", "-c", str(tested_pins())]
    cmd = [str(Path(sys.executable).parent / "uv"), "pip", "compile", "pyproject.toml"]
    for extra in extras:
        cmd += ["--extra", extra]
    cmd += [
        "--generate-hashes",
        "--python-version",
        "3.11",
        "--python-platform",
        "x86_64-manylinux_2_28",
        "--index-strategy",
        "unsafe-best-match",
        "--no-header",
        "-o",
        out,
        *args,
    ]
    if local and conf.get("constraint"):
        cmd += ["-c", conf["constraint"]]  # this machine's pip constraints, as pip itself would apply them
    print(" ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL).returncode


def main() -> int:
    conf = pip_config()
    for out, extras, local, what, used_by in LOCKS:
        rc = compile_lock(out, extras, local, conf)
        if rc != 0:
            return rc
        lock = ROOT / out
        head = (
            f"# `make lock` (scripts/lock.py) writes this file: {what}, pinned and hashed.\n"
            f"# Used by {used_by}: pip install --require-hashes -r {out}.\n"
        )
        lock.write_text(head + lock.read_text())
        if local:
            added = add_sibling_hashes(lock, conf.get("extra-index-url", "").split())
            print(f"{out}: {added} hashes added from other indexes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
