"""Damaged and unusual sources through the real CLI and Dagster job: truncated files are flagged (or refused
with --strict), failures are loud, and a file whose edit list starts the video late keeps one timeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidintel_pipeline import cli
from vidintel_pipeline.media.ffmpeg import run_ffmpeg


def _memory(home: Path, project: str, video: str) -> dict:
    return json.loads((home / f"data/output/projects/{project}/memories/{video}.json").read_text())


@pytest.fixture(scope="module")
def faststart(demo_video, tmp_path_factory) -> Path:
    """The 24 s demo with its index up front: cut short, it still opens (an interrupted download)."""
    out = tmp_path_factory.mktemp("damaged") / "faststart.mp4"
    run_ffmpeg(["-i", str(demo_video[0]), "-c", "copy", "-movflags", "+faststart", str(out)], what="remux")
    return out


def test_a_truncated_file_is_flagged_and_nothing_runs_past_its_end(home, faststart, tmp_path, capsys):
    cut = tmp_path / "cut short.mp4"
    data = faststart.read_bytes()
    cut.write_bytes(data[: len(data) * 35 // 100])
    assert cli.main(["ingest", str(cut), "--project", "acme", "--video-id", "partial", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning: source truncated" in err, err
    memory = _memory(home, "acme", "partial")
    src = memory["source"]
    assert src["truncated"] is True and src["declared_duration_s"] == pytest.approx(24.0, abs=0.3)
    assert memory["duration_s"] == pytest.approx(src["readable_video_s"]) and memory["duration_s"] < 12
    assert any(w.startswith("source truncated") for w in memory["warnings"])
    assert memory["markers"] and all(m["end_s"] <= memory["duration_s"] + 1e-6 for m in memory["markers"])
    assert not any("clamped" in w or "dropped" in w for w in memory["warnings"])  # no detector ran past the end
    assert all(w["end_s"] <= memory["duration_s"] + 0.5 for s in memory["transcript"]["segments"] for w in s["words"])

    # --strict refuses it, with the reason, and leaves the earlier result alone
    assert cli.main(["ingest", str(cut), "--project", "acme", "--video-id", "partial", "--quiet", "--strict"]) == 2
    err = capsys.readouterr().err
    assert "strict" in err and "truncated" in err, err
    assert _memory(home, "acme", "partial") == memory


def test_garbage_in_the_middle_is_counted_and_reported(home, faststart, tmp_path, capsys):
    """3 kB of noise over the middle of the file: the decoder refuses a packet or flags a frame; the rest is
    analysed, the damage is a warning, and --strict refuses the file."""
    import random

    data = bytearray(faststart.read_bytes())
    for at in (0.4, 0.6):
        i = int(len(data) * at)
        data[i : i + 3000] = random.Random(7).randbytes(3000)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    assert cli.main(["ingest", str(damaged), "--project", "acme", "--video-id", "damaged", "--quiet"]) == 0
    assert "warning: source damaged: " in capsys.readouterr().err
    memory = _memory(home, "acme", "damaged")
    assert memory["duration_s"] == pytest.approx(24.0, abs=0.3) and not memory["source"]["truncated"]
    assert sum(m["label"] == "cut" for m in memory["markers"]) >= 4  # the picture after the damage is analysed
    assert cli.main(["ingest", str(damaged), "--project", "acme", "--video-id", "damaged", "--quiet", "--strict"]) == 2
    assert "(strict): source damaged" in capsys.readouterr().err


def test_a_failed_plugin_is_a_warning_and_strict_makes_it_an_error(home, demo_video, tmp_path, monkeypatch, capsys):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "outage.py").write_text(
        "from vidintel_pipeline.plugin_api.contracts import BaseTemporalPlugin, PluginError\n"
        "class Outage(BaseTemporalPlugin):\n"
        "    def get_plugin_info(self):\n"
        "        return {'plugin_name': 'outage', 'plugin_version': '1.0.0', 'supported_events': ['custom_prompt']}\n"
        "    async def detect_markers(self, chunk, config):\n"
        "        raise PluginError('provider outage (HTTP 503)', plugin='outage')\n"
    )
    monkeypatch.setenv("VIDINTEL_PLUGIN_PATH", str(plugins))
    args = [
        "ingest",
        str(demo_video[0]),
        "--project",
        "acme",
        "--video-id",
        "loud",
        "--quiet",
        "--plugins",
        "local_shots,outage",
    ]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "vidintel: warning: plugin outage failed: PluginError: [outage] provider outage (HTTP 503)" in err, err
    memory = _memory(home, "acme", "loud")
    assert any(m["plugin"] == "local_shots" for m in memory["markers"])  # the other plugin's result is kept
    assert cli.main(args + ["--strict"]) == 3
    assert "--strict: 1 warning(s)" in capsys.readouterr().err


def test_an_edit_list_keeps_pictures_words_and_cuts_on_one_timeline(home, demo_video, tmp_path, capsys):
    """The same demo, its video placed 0.6 s after its audio by an edit list: frame 0 is still 0.0, so cuts
    stay where they were and every word moves 0.6 s earlier (the audio before the first picture is cut)."""
    late = tmp_path / "late.mp4"
    run_ffmpeg(
        [
            "-itsoffset",
            "0.6",
            "-i",
            str(demo_video[0]),
            "-i",
            str(demo_video[0]),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c",
            "copy",
            str(late),
        ],
        what="remux with an edit list",
    )
    assert cli.main(["ingest", str(demo_video[0]), "--project", "acme", "--video-id", "plain", "--quiet"]) == 0
    assert cli.main(["ingest", str(late), "--project", "acme", "--video-id", "late", "--quiet"]) == 0
    capsys.readouterr()
    plain, shifted = _memory(home, "acme", "plain"), _memory(home, "acme", "late")
    assert shifted["source"]["audio_offset_s"] == pytest.approx(-0.6, abs=0.03)
    assert shifted["duration_s"] == pytest.approx(plain["duration_s"], abs=0.05)

    def cuts(m):
        return [x["start_s"] for x in m["markers"] if x["label"] == "cut"]

    assert cuts(shifted) == pytest.approx(cuts(plain), abs=0.041)
    # words that start after the first picture: the same words, 0.6 s earlier (those before it are cut off)
    a = [
        w for s in plain["transcript"]["segments"] for w in s["words"] if w["start_s"] > 1.0 and w["probability"] > 0.5
    ]
    b = [w for s in shifted["transcript"]["segments"] for w in s["words"]]
    assert len(a) >= 10

    # the speech model may write a word differently once the audio before it is cut ("Our" / "our", "12%" /
    # "12 percent"), and a segment's first word may start ~0.1 s apart: compare normalized words, with a
    # tolerance well under the 0.6 s being checked
    def norm(word):
        return "".join(ch for ch in word.lower() if ch.isalnum())

    moved, found = [], 0
    for x in a:  # the same word, nearest in time to where it should now be
        want = x["start_s"] - 0.6
        got = min(
            (w["start_s"] for w in b if norm(w["word"]) == norm(x["word"])), key=lambda t: abs(t - want), default=None
        )
        found += got is not None
        moved.append(got is not None and abs(got - want) <= 0.15)
    assert found >= 0.8 * len(a)
    assert sum(moved) >= 0.9 * found, list(zip([x["word"] for x in a], moved, strict=False))
    assert min(k["time_s"] for k in shifted["keyframes"]) >= 0.0


def test_reels_seek_on_the_same_timeline(demo_video, tmp_path):
    """ffmpeg's -ss counts from the file's start; a reel's cut at t must show the frame vidintel calls t."""
    import numpy as np

    from vidintel_pipeline.media.decode import iter_frames
    from vidintel_pipeline.media.probe import probe
    from vidintel_pipeline.outputs.reel_cuts import seek_arg

    late = tmp_path / "late.mp4"
    run_ffmpeg(
        [
            "-itsoffset",
            "0.6",
            "-i",
            str(demo_video[0]),
            "-i",
            str(demo_video[0]),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c",
            "copy",
            str(late),
        ],
        what="remux with an edit list",
    )
    info = probe(late)
    ours = {round(f.time_s, 2): f.y.astype(np.float32) for f in iter_frames(late) if 1.9 <= f.time_s <= 2.3}

    def frame_at(ss: str) -> np.ndarray:
        out = tmp_path / f"at{ss}.mp4"
        run_ffmpeg(["-ss", ss, "-i", str(late), "-frames:v", "1", "-an", str(out)], what="one frame")
        return next(iter(iter_frames(out))).y.astype(np.float32)

    target = ours[2.0]
    shifted, plain = frame_at(seek_arg(info, 2.0)), frame_at("2.000000")
    assert np.abs(shifted - target).mean() < 2.0  # the same picture (one encode away)
    assert np.abs(plain - target).mean() > np.abs(shifted - target).mean() + 2  # without the shift: 0.6 s off
