"""Find and run the ffmpeg binary.

A system ffmpeg on PATH wins (or ``VIDINTEL_FFMPEG``); otherwise the static build shipped by the
``imageio-ffmpeg`` wheel is used, so a fresh machine needs no system package.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
from typing import Sequence


class MediaError(RuntimeError):
    """A media file could not be read or written; the message names the file and the reason."""


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    explicit = os.environ.get("VIDINTEL_FFMPEG")
    if explicit:
        return explicit
    system = shutil.which("ffmpeg")
    if system:
        return system
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: Sequence[str], *, what: str, timeout: float | None = None) -> None:
    """Run ffmpeg quietly; raise :class:`MediaError` with ffmpeg's last words on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"{what}: ffmpeg timed out after {timeout} s") from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
        if proc.returncode < 0:  # killed by a signal: say which, and what it usually means
            tail.insert(0, killed_by(-proc.returncode))
        raise MediaError(f"{what}: ffmpeg failed ({proc.returncode}): {' | '.join(tail) or 'no message'}")


_SIGNAL_MEANING = {
    signal.SIGXFSZ: "the file size limit was reached (disk quota or ulimit -f): free space or raise the limit",
    signal.SIGKILL: "killed from outside, often by the out-of-memory killer",
    signal.SIGSEGV: "ffmpeg crashed on this input",
}


def killed_by(signum: int) -> str:
    try:
        sig = signal.Signals(signum)
    except ValueError:
        return f"killed by signal {signum}"
    return f"killed by {sig.name}: {_SIGNAL_MEANING.get(sig, sig.name)}"
