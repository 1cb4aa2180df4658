"""Find and run the ffmpeg binary: the one the tests ran, unless ``VIDINTEL_FFMPEG`` names another.

By default the static build shipped by the ``imageio-ffmpeg`` wheel is used, whatever is on PATH: a
distribution's older ffmpeg (Debian 12 ships 5.1) lacks options the code and tests pass. Another binary
is chosen with ``VIDINTEL_FFMPEG`` (a path, or a name looked up on PATH); its ``-version`` must be at
least :data:`MIN_VERSION`, else a clear error names the binary, its version and the minimum.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import signal
import subprocess
from typing import Optional, Sequence

# 6.0: -display_rotation (how tests/media/test_media.py and tests/reliability/cases.py make a rotated phone video) is
# a 6.0 option; -fps_mode (tests/reliability/cases.py) is 5.1. Everything else passed (the segment muxer's
# -segment_times/-reset_timestamps, -bsf:v h264_mp4toannexb, xfade, lavfi sources) is older than both.
MIN_VERSION = (6, 0)
_VERSION_RE = re.compile(r"ffmpeg version n?(\d+)\.(\d+)")  # 5.1.6-0+deb12u1, n9.0.2-17-g2a57..., 6.0-static
_LOG = logging.getLogger("vidintel.ffmpeg")


class MediaError(RuntimeError):
    """A media file could not be read or written; the message names the file and the reason."""


class FfmpegVersionError(MediaError):
    """The ffmpeg selected is missing, does not run, or is older than :data:`MIN_VERSION`."""


def bundled_ffmpeg() -> str:
    """The imageio-ffmpeg wheel's own binary (not its IMAGEIO_FFMPEG_EXE or PATH fallbacks)."""
    import imageio_ffmpeg

    exe = imageio_ffmpeg.get_ffmpeg_exe()
    if os.environ.get("IMAGEIO_FFMPEG_EXE") or not os.path.isabs(exe):
        # get_ffmpeg_exe() prefers IMAGEIO_FFMPEG_EXE and falls back to "ffmpeg" on PATH: neither is the
        # build we tested, so ask for the wheel's binary itself (on a platform without one there is none)
        from imageio_ffmpeg import _utils

        exe = _utils._get_ffmpeg_exe() or ""
        if not os.path.isabs(exe):
            raise FfmpegVersionError(
                "the imageio-ffmpeg wheel ships no ffmpeg for this platform: "
                f"set VIDINTEL_FFMPEG to an ffmpeg {'.'.join(map(str, MIN_VERSION))} or newer"
            )
    return exe


def ffmpeg_version(exe: str) -> tuple[Optional[tuple[int, int]], str]:
    """((major, minor) or None when unparseable, the first line of ``exe -version``)."""
    try:
        proc = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FfmpegVersionError(f"ffmpeg {exe} does not run: {exc}") from exc
    first = (proc.stdout or proc.stderr).strip().splitlines()[:1]
    line = first[0] if first else ""
    if proc.returncode != 0 or not line.startswith("ffmpeg version"):
        raise FfmpegVersionError(
            f"{exe} is not ffmpeg: `{exe} -version` exited {proc.returncode} saying {line[:120]!r}"
        )
    m = _VERSION_RE.match(line)
    return ((int(m.group(1)), int(m.group(2))) if m else None), line


def check_ffmpeg(exe: str, *, source: str) -> str:
    """``exe`` if its version is at least :data:`MIN_VERSION`; git builds without a number pass with a warning."""
    version, line = ffmpeg_version(exe)
    minimum = ".".join(map(str, MIN_VERSION))
    if version is None:  # N-12345-g<hash>: a build from git, newer or older, nobody can tell
        _LOG.warning(
            f"cannot tell the version of {exe} ({source}) from {line[:80]!r}; using it, "
            f"but vidintel needs ffmpeg {minimum} or newer"
        )
    elif version < MIN_VERSION:
        raise FfmpegVersionError(
            f"{exe} ({source}) is ffmpeg {version[0]}.{version[1]} ({line[len('ffmpeg version ') :].split()[0]}); "
            f"vidintel needs ffmpeg {minimum} or newer (-display_rotation). Unset VIDINTEL_FFMPEG to use the "
            "bundled imageio-ffmpeg build, or point it at a newer ffmpeg"
        )
    return exe


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """The ffmpeg to run, decided once per process: ``VIDINTEL_FFMPEG``, else imageio-ffmpeg's binary."""
    explicit = os.environ.get("VIDINTEL_FFMPEG")
    if explicit:
        exe = shutil.which(explicit)  # a path (must be executable) or a name on PATH
        if exe is None:
            raise FfmpegVersionError(f"VIDINTEL_FFMPEG={explicit!r}: no such executable (a path, or a name on PATH)")
        return check_ffmpeg(os.path.abspath(exe), source="VIDINTEL_FFMPEG")
    # checked too: an old imageio-ffmpeg wheel could bundle an older ffmpeg than the code needs
    return check_ffmpeg(bundled_ffmpeg(), source="bundled with imageio-ffmpeg")


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
