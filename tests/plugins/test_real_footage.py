"""Shots, transitions, colour bars, keyframes and the time origin, measured on the real-footage dev set.

The dev set (tests/plugins/real_footage/devset.py) is three hand-labelled real clips and nine cases re-edited from
them the way real footage misleads detectors. Every figure asserted here is printed, so a failing run says
how far off it is; `make bench` prints the same table beside PySceneDetect.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "real_footage"))

from devset import dev_set  # noqa: E402

from vidintel.plugins.local_shots import LocalShotsPlugin  # noqa: E402
from vidintel.plugins.local_technical_cues import LocalTechnicalCuesPlugin  # noqa: E402
from vidintel_pipeline.engine.keyframes import KeyframeSelector  # noqa: E402
from vidintel_pipeline.engine.runner import run_frame_plugins  # noqa: E402
from vidintel_pipeline.media.probe import probe  # noqa: E402
from vidintel_pipeline.plugin_api.contracts import AnalysisConfig, ChunkInfo  # noqa: E402


def score(clip, markers) -> dict:
    """Hard cuts at +-1 frame, gradual transitions found (overlapping the truth) and named, bars frames."""
    fps = clip.fps
    cuts = [round(m.start_s * fps) for m in markers if m.label == "cut"]
    grads = [
        (m.label, round(m.start_s * fps), round(m.end_s * fps))
        for m in markers
        if m.type == "shot_boundary" and m.label != "cut"
    ]
    tp = [c for c in cuts if any(abs(c - t) <= 1 for t in clip.cuts)]
    missed = [t for t in clip.cuts if not any(abs(c - t) <= 1 for c in cuts)]

    def overlaps(g, x):
        return x[1] <= g["end_frame"] and x[2] >= g["start_frame"]

    found = [next((x for x in grads if overlaps(g, x)), None) for g in clip.gradual]
    bars = {f for m in markers if m.label == "color_bars" for f in range(round(m.start_s * fps), round(m.end_s * fps))}
    truth_bars = {f for a, b in clip.bars for f in range(a, b + 1)}
    return {
        "tp": len(tp),
        "fp": [c for c in cuts if c not in tp],
        "fn": missed,
        "g_total": len(clip.gradual),
        "g_found": sum(x is not None for x in found),
        "g_named": sum(x is not None and x[0] == g["type"] for g, x in zip(clip.gradual, found, strict=False)),
        "g_false": [x for x in grads if not any(overlaps(g, x) for g in clip.gradual)],
        "g_spans": [
            (g["start_frame"] - x[1], g["end_frame"] - x[2]) for g, x in zip(clip.gradual, found, strict=False) if x
        ],
        "bars_found": len(bars & truth_bars),
        "bars_total": len(truth_bars),
        "bars_false": len(bars - truth_bars),
    }


@pytest.fixture(scope="module")
def analysed():
    """Every dev-set clip decoded once through the shots and cues plugins and the keyframe selector."""
    out = []
    for clip in dev_set():
        info = probe(clip.path)
        source = ChunkInfo(
            index=0,
            path=str(clip.path),
            project_id="dev",
            video_id=clip.name,
            start_s=0.0,
            end_s=info.duration_s,
            fps=info.fps,
        )
        plugins = [LocalShotsPlugin(), LocalTechnicalCuesPlugin()]
        for p in plugins:
            p.begin(source, AnalysisConfig())
        selector = KeyframeSelector()
        outcome, frames, _ = run_frame_plugins(source, plugins, AnalysisConfig(), keyframes=selector)
        markers = [m for p in plugins for m in outcome[p.name]]
        out.append((clip, info, frames, markers, selector.select(markers, info.duration_s)))
    return out


def test_shots_and_transitions_hold_on_real_footage(analysed):
    tot: dict = {"tp": 0, "fp": 0, "fn": 0, "g_total": 0, "g_found": 0, "g_named": 0, "g_false": 0}
    for clip, _info, frames, markers, _ in analysed:
        s = score(clip, markers)
        print(
            f"{clip.name:18} cuts {s['tp']}/{len(clip.cuts)} false {s['fp']} missed {s['fn']} | gradual "
            f"{s['g_found']}/{s['g_total']} named {s['g_named']} false {s['g_false']} span errors {s['g_spans']}"
        )
        assert frames == clip.frames, f"{clip.name}: decoded {frames} frames, truth has {clip.frames}"
        for k in ("tp", "g_total", "g_found", "g_named"):
            tot[k] += s[k]
        tot["fp"] += len(s["fp"])
        tot["fn"] += len(s["fn"])
        tot["g_false"] += len(s["g_false"])
        assert all(abs(a) <= 3 and abs(b) <= 3 for a, b in s["g_spans"]), f"{clip.name}: spans off {s['g_spans']}"
    precision = tot["tp"] / max(1, tot["tp"] + tot["fp"])
    recall = tot["tp"] / max(1, tot["tp"] + tot["fn"])
    print(
        f"hard cuts: precision {precision:.3f} recall {recall:.3f}; gradual {tot['g_found']}/{tot['g_total']}, "
        f"named right {tot['g_named']}, false {tot['g_false']}"
    )
    assert precision >= 0.95 and recall >= 0.98
    assert tot["g_found"] >= 0.9 * tot["g_total"] and tot["g_named"] >= 0.9 * tot["g_found"]
    assert tot["g_false"] == 0  # no gradual transition on static, scrolling or moving content


def test_colour_bars_in_their_real_forms(analysed):
    for clip, _info, _frames, markers, _ in analysed:
        s = score(clip, markers)
        if s["bars_total"]:
            print(f"{clip.name}: bars frames found {s['bars_found']}/{s['bars_total']}, false {s['bars_false']}")
            assert s["bars_found"] >= 0.95 * s["bars_total"]
        assert s["bars_false"] <= 2, f"{clip.name}: {s['bars_false']} frames called bars that are not"


def test_every_keyframe_lies_inside_its_shot(analysed):
    for clip, _info, _frames, _markers, chosen in analysed:
        frames_of = [round(c.time_s * clip.fps) for _, c in chosen]
        assert len(set(frames_of)) == len(frames_of), f"{clip.name}: two shots share a keyframe {frames_of}"
        for f in frames_of:  # inside one truth shot: never on a cut's wrong side nor inside a transition
            assert any(a <= f <= b for a, b in clip.shots), f"{clip.name}: keyframe at frame {f} outside {clip.shots}"
        for a, b in clip.shots:  # and every shot of a second or more has one
            assert b - a + 1 < clip.fps or any(a <= f <= b for f in frames_of), (
                f"{clip.name}: no keyframe for shot {a}-{b} (keyframes at {frames_of})"
            )


def test_one_timeline_on_a_file_with_an_edit_list(analysed):
    """The video starts 0.6 s after the audio: frame 0 is 0.0, cuts sit where they sit in the plain clip, and
    the audio is shifted by the same 0.6 s."""
    by_name = {c.name: (c, info, m) for c, info, _, m, _ in analysed}
    clip, info, markers = by_name["editlist"]
    plain = by_name["bikes"][2]
    assert info.video_start_s == pytest.approx(0.6, abs=0.05) and info.audio_offset_s == pytest.approx(-0.6, abs=0.05)
    assert info.duration_s == pytest.approx(10.0, abs=0.05)  # the video stream's duration, not the container's
    cuts = [m.start_s for m in markers if m.label == "cut"]
    assert cuts == [m.start_s for m in plain if m.label == "cut"]
    assert min(m.start_s for m in markers) >= 0.0
