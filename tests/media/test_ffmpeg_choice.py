"""The ffmpeg vidintel runs is the one the tests ran: the bundled build, whatever is on PATH, unless VIDINTEL_FFMPEG
says.

The old ffmpeg is a real executable script (``tests/old_ffmpeg_bin/ffmpeg``) that answers ``-version`` as
Debian 12's 5.1 does and fails anything else; the good one is the imageio-ffmpeg binary, run for real.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pytest

from vidintel_pipeline.media import ffmpeg as ff
from vidintel_pipeline.media.probe import probe

OLD_BIN = Path(__file__).parents[1] / "old_ffmpeg_bin"
VIDINTEL = str(Path(sys.executable).with_name("vidintel"))
WHEEL_BINARIES = Path(imageio_ffmpeg.__file__).parent / "binaries"


@pytest.fixture
def fresh(monkeypatch):
    """A process-wide decision made again: the cache cleared before and after, PATH and VIDINTEL_FFMPEG isolated."""
    monkeypatch.delenv("VIDINTEL_FFMPEG", raising=False)
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    ff.ffmpeg_exe.cache_clear()
    yield monkeypatch
    ff.ffmpeg_exe.cache_clear()


def stub(folder: Path, first_line: str) -> Path:
    """An executable named ffmpeg whose -version prints ``first_line``; it logs every call, and fails all but
    -version."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "ffmpeg"
    exe.write_text(
        f'#!/bin/sh\necho "$*" >> {folder / "calls.log"}\n'
        f'case " $* " in *" -version "*) echo \'{first_line}\'; exit 0 ;; esac\n'
        "echo \"Unrecognized option 'display_rotation'.\" >&2; exit 1\n"
    )
    exe.chmod(0o755)
    return exe


def rotate_for_real(tmp_path: Path) -> int:
    """Render a clip and stream-copy it with -display_rotation (a 6.0 option): the rotation the result carries."""
    raw, rotated = tmp_path / "raw.mp4", tmp_path / "rotated.mp4"
    ff.run_ffmpeg(
        ["-f", "lavfi", "-i", "testsrc2=s=160x90:r=10:d=0.5", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(raw)],
        what="render",
    )
    ff.run_ffmpeg(["-display_rotation", "90", "-i", str(raw), "-c", "copy", str(rotated)], what="rotate")
    return probe(rotated).rotation


def test_an_old_ffmpeg_first_on_path_is_never_run(fresh, tmp_path):
    old = stub(tmp_path / "bin", "ffmpeg version 5.1.6-0+deb12u1 Copyright (c) 2000-2024 the FFmpeg developers")
    fresh.setenv("PATH", f"{old.parent}{os.pathsep}{os.environ['PATH']}")
    assert shutil.which("ffmpeg") == str(old)  # it is what PATH would give
    exe = ff.ffmpeg_exe()
    assert Path(exe).parent == WHEEL_BINARIES and Path(exe).is_file()  # the wheel's own build instead
    assert rotate_for_real(tmp_path) in (90, 270)
    assert not (old.parent / "calls.log").exists()  # the old one was not even asked its version


def test_a_new_process_with_the_committed_old_stub_on_path_uses_the_bundled_build(tmp_path):
    """As `make test` runs the suite: tests/old_ffmpeg_bin first on PATH, a fresh interpreter deciding."""
    env = dict(os.environ, PATH=f"{OLD_BIN}{os.pathsep}{os.environ['PATH']}")
    env.pop("VIDINTEL_FFMPEG", None)
    code = "from vidintel_pipeline.media.ffmpeg import ffmpeg_exe; print(ffmpeg_exe())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).parent == WHEEL_BINARIES
    old = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, env=env)  # the stub is what PATH finds
    assert old.stdout.startswith("ffmpeg version 5.1.6")


@pytest.mark.parametrize("how", ["path", "name on PATH"])
def test_vidintel_ffmpeg_naming_an_old_ffmpeg_is_a_clear_error(fresh, tmp_path, how):
    old = stub(tmp_path / "bin", "ffmpeg version 5.1.6-0+deb12u1 Copyright (c) 2000-2024 the FFmpeg developers")
    if how == "path":
        fresh.setenv("VIDINTEL_FFMPEG", str(old))
    else:
        fresh.setenv("PATH", f"{old.parent}{os.pathsep}{os.environ['PATH']}")
        fresh.setenv("VIDINTEL_FFMPEG", "ffmpeg")
    with pytest.raises(ff.FfmpegVersionError) as err:
        ff.ffmpeg_exe()
    msg = str(err.value)
    assert (
        str(old) in msg and "ffmpeg 5.1 (5.1.6-0+deb12u1)" in msg and "6.0 or newer" in msg and "VIDINTEL_FFMPEG" in msg
    )
    with pytest.raises(ff.MediaError, match="5.1.6-0"):  # and every ffmpeg call says so, instead of failing oddly
        ff.run_ffmpeg(["-version"], what="anything")


def test_vidintel_ffmpeg_naming_the_bundled_build_works(fresh, tmp_path):
    bundled = ff.bundled_ffmpeg()
    fresh.setenv("VIDINTEL_FFMPEG", bundled)
    assert ff.ffmpeg_exe() == bundled
    assert rotate_for_real(tmp_path) in (90, 270)


def test_a_git_build_is_used_with_a_warning_and_missing_or_foreign_binaries_are_errors(fresh, tmp_path, caplog):
    git = stub(tmp_path / "git", "ffmpeg version N-112345-g0a1b2c3d4e Copyright (c) 2000-2026 the FFmpeg developers")
    fresh.setenv("VIDINTEL_FFMPEG", str(git))
    with caplog.at_level(logging.WARNING, logger="vidintel.ffmpeg"):
        assert ff.ffmpeg_exe() == str(git)
    assert "cannot tell the version" in caplog.text and str(git) in caplog.text
    ff.ffmpeg_exe.cache_clear()
    fresh.setenv("VIDINTEL_FFMPEG", str(tmp_path / "no-such-ffmpeg"))
    with pytest.raises(ff.FfmpegVersionError, match="no such executable"):
        ff.ffmpeg_exe()
    fresh.setenv("VIDINTEL_FFMPEG", "/bin/true")  # runs, but is no ffmpeg
    with pytest.raises(ff.FfmpegVersionError, match="is not ffmpeg"):
        ff.ffmpeg_exe()


def test_the_decision_is_made_once_per_process(fresh, tmp_path):
    first = ff.ffmpeg_exe()
    fresh.setenv("VIDINTEL_FFMPEG", str(stub(tmp_path / "bin", "ffmpeg version 5.1.6")))
    assert ff.ffmpeg_exe() == first  # cached: a later change of the environment does not switch binaries mid-run


def test_cli_refuses_an_old_vidintel_ffmpeg_before_touching_storage(fresh, home, tmp_path):
    video = tmp_path / "talk.mp4"
    ff.run_ffmpeg(
        ["-f", "lavfi", "-i", "testsrc2=s=160x90:r=10:d=0.5", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)],
        what="render",
    )
    old = stub(tmp_path / "bin", "ffmpeg version 5.1.6-0+deb12u1 Copyright (c) 2000-2024 the FFmpeg developers")
    env = dict(os.environ, VIDINTEL_FFMPEG=str(old))
    res = subprocess.run(
        [VIDINTEL, "ingest", str(video), "--project", "acme", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr[-1500:]
    assert (
        f"not ingested: {old} (VIDINTEL_FFMPEG) is ffmpeg 5.1 (5.1.6-0+deb12u1); vidintel needs ffmpeg 6.0 or newer"
        in res.stderr
    )
    assert not (home / "data").exists()
