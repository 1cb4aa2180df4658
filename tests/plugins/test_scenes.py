"""Scene changes (local_scenes): measured on hand-labelled real clips, and each rule on pictures made to test it.

The real clips are bikes (a montage: every cut is a change of place) and the Big Buck Bunny trailer from moviepy's
sdist (excerpts of the film joined by fades and a dissolve, each with hard cuts inside one scene); their scene
truth and the reason for every boundary are in ``tests/plugins/real_footage/truth/scenes.json``. The shots come
from ``local_shots`` and ``local_technical_cues`` on the real decode, as in a run, so their misfires count too.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "real_footage"))

from devset import real_clips  # noqa: E402

from vidintel.plugins.local_scenes import LocalScenesPlugin  # noqa: E402
from vidintel.plugins.local_shots import LocalShotsPlugin  # noqa: E402
from vidintel.plugins.local_technical_cues import LocalTechnicalCuesPlugin  # noqa: E402
from vidintel_pipeline.engine.keyframes import KeyframeSelector  # noqa: E402
from vidintel_pipeline.engine.runner import run_frame_plugins  # noqa: E402
from vidintel_pipeline.media.probe import probe  # noqa: E402
from vidintel_pipeline.plugin_api.contracts import (  # noqa: E402
    AnalysisConfig,
    ChunkInfo,
    Keyframe,
    PluginError,
    TemporalMarker,
    TranscriptionResult,
    TranscriptSegment,
    Word,
)

TRUTH = json.loads((Path(__file__).parent / "real_footage/truth/scenes.json").read_text())["clips"]


def scenes(chunk: ChunkInfo, **options) -> list[TemporalMarker]:
    return asyncio.run(LocalScenesPlugin(**options).detect_markers(chunk, AnalysisConfig()))


def analyse(path: Path, name: str, tmp: Path) -> ChunkInfo:
    """A run's view of one clip: the shot and cue markers of one decode, and each shot's keyframe on disk."""
    info = probe(path)
    source = ChunkInfo(
        index=0, path=str(path), project_id="dev", video_id=name, start_s=0.0, end_s=info.duration_s, fps=info.fps
    )
    plugins = [LocalShotsPlugin(), LocalTechnicalCuesPlugin()]
    for p in plugins:
        p.begin(source, AnalysisConfig())
    selector = KeyframeSelector()
    outcome, _, _ = run_frame_plugins(source, plugins, AnalysisConfig(), keyframes=selector)
    markers = [m for p in plugins for m in outcome[p.name]]
    keyframes = []
    for shot, cand in selector.select(markers, info.duration_s):
        jpg = tmp / f"{name}-{shot:03d}.jpg"
        jpg.write_bytes(cand.jpeg)
        keyframes.append(Keyframe(time_s=cand.time_s, uri=jpg.as_uri(), path=str(jpg), shot_index=shot))
    return source.model_copy(update={"markers": markers, "keyframes": keyframes})


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    clips = real_clips()
    tmp = tmp_path_factory.mktemp("scenes")
    return {name: analyse(clips[name], name, tmp) for name in ("bikes", "trailer_bbb")}


def test_scene_changes_on_real_footage(real):
    """Scene changes within 0.5 s of the labelled frame; the labelled same-scene cuts must not start a scene."""
    tp = fp = fn = kept = same = 0
    for name, chunk in real.items():
        truth, fps = TRUTH[name], TRUTH[name]["fps"]
        found = scenes(chunk)
        at = [round(m.attributes["starts_at_s"] * fps) for m in found]
        tol = round(0.5 * fps)
        hit = [t for t in truth["scene_changes"] if any(abs(a - t) <= tol for a in at)]
        false = [a for a in at if not any(abs(a - t) <= tol for t in truth["scene_changes"])]
        same_cuts = [c["frame"] if isinstance(c, dict) else c for c in truth["same_scene_cuts"]]
        split = [c for c in same_cuts if any(abs(a - c) <= 1 for a in at)]
        print(
            f"{name:12} scene changes {len(hit)}/{len(truth['scene_changes'])} false {false} | same-scene cuts "
            f"kept {len(truth['same_scene_cuts']) - len(split)}/{len(truth['same_scene_cuts'])} | "
            + "; ".join(f"{a}: {m.attributes['why']}" for a, m in zip(at, found, strict=True))
        )
        for m in found:
            assert m.type == "scene_change" and m.attributes["why"] and m.start_s <= m.attributes["starts_at_s"] + 1e-6
        tp, fp, fn = tp + len(hit), fp + len(false), fn + len(truth["scene_changes"]) - len(hit)
        same, kept = same + len(truth["same_scene_cuts"]), kept + len(truth["same_scene_cuts"]) - len(split)
    precision, recall = tp / max(1, tp + fp), tp / max(1, tp + fn)
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    print(
        f"scene changes: precision {precision:.3f} recall {recall:.3f} F1 {f1:.3f}; same-scene cuts kept {kept}/{same}"
    )
    assert f1 >= 0.85 and kept >= same - 1


def test_the_montage_is_cut_by_pictures_and_the_trailer_by_its_transitions(real):
    """Why each real boundary was decided: bikes has no transition, so its cuts stand on the pictures alone; the
    trailer's scene changes are its fades and its dissolve, and its hard cuts are linked into their scenes."""
    bikes = LocalScenesPlugin().decide(real["bikes"])
    assert all(b.kind == "cut" for b in bikes)
    assert all(b.scene_change and b.similarity is not None and b.similarity < 0.72 for b in bikes)
    trailer = [b for b in LocalScenesPlugin().decide(real["trailer_bbb"]) if b.scene_change]
    assert {b.kind for b in trailer} <= {"fade", "dissolve", "black"}, [(b.at_s, b.kind) for b in trailer]


# ---- each rule on its own, with pictures that make the truth exact -------------------------------------------
def place(seed: int, hue: int) -> np.ndarray:
    """A 'place': a 720x1280 picture of smooth blobs around one hue, so crops of it are new angles on it."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (9, 16, 3), dtype=np.uint8)
    small[..., 0] = (hue + small[..., 0] // 12) % 180
    return cv2.cvtColor(cv2.resize(small, (1280, 720), interpolation=cv2.INTER_CUBIC), cv2.COLOR_HSV2BGR)


def chunk_of(tmp: Path, shots: list[tuple[np.ndarray, float]], transitions=(), transcript=None) -> ChunkInfo:
    """Shots of the given pictures and lengths, joined by cuts (or by the transition given for a boundary)."""
    markers, keyframes, t = [], [], 0.0
    for i, (pic, length) in enumerate(shots):
        if i:
            kind = dict(transitions).get(i, "cut")
            if kind == "cut":
                markers.append(TemporalMarker(type="shot_boundary", start_s=t, end_s=t, label="cut", confidence=1,
                                              plugin="t", attributes={"transition": "cut"}))  # fmt: skip
            else:
                attrs = {"transition": kind} | ({"field": "black"} if kind.startswith("fade") else {})
                markers.append(TemporalMarker(type="shot_boundary", start_s=t - 0.5, end_s=t, label=kind,
                                              confidence=1, plugin="t", attributes=attrs))  # fmt: skip
        jpg = tmp / f"shot{i}.jpg"
        cv2.imwrite(str(jpg), cv2.resize(pic, (320, 180), interpolation=cv2.INTER_AREA))
        keyframes.append(Keyframe(time_s=t + length / 2, uri=jpg.as_uri(), path=str(jpg), shot_index=i))
        t += length
    return ChunkInfo(project_id="p", video_id="v", path="x.mp4", start_s=0, end_s=t, fps=25, markers=markers,
                     keyframes=keyframes, transcript=transcript)  # fmt: skip


def angle(pic: np.ndarray, x: int, y: int) -> np.ndarray:
    return pic[y : y + 480, x : x + 853]


def test_shot_reverse_shot_stays_one_scene_and_a_new_place_starts_one(tmp_path):
    """A-B-A-B at one place (two angles that look alike only pairwise across B) then a new place: one change."""
    a, b = place(1, 20), place(2, 100)
    shots = [(angle(a, 0, 0), 3), (angle(a, 420, 230), 3), (angle(a, 30, 20), 3), (angle(a, 400, 200), 3), (b, 3)]
    found = scenes(chunk_of(tmp_path, shots))
    assert [m.attributes["starts_at_s"] for m in found] == [12.0], [m.attributes for m in found]
    assert "differ" in found[0].attributes["why"] and found[0].attributes["transition"] == "cut"


def test_speech_across_a_cut_keeps_the_scene(tmp_path):
    """Two places cut together while one sentence runs over the cut: one scene; with a pause there, two."""
    a, b = place(3, 20), place(4, 110)

    def said(gap: float) -> TranscriptionResult:
        words = [
            Word(start_s=2.0, end_s=2.9, word="we", probability=1),
            Word(start_s=2.9 + gap, end_s=3.6 + gap, word="went", probability=1),
        ]
        return TranscriptionResult(segments=[TranscriptSegment(start_s=2.0, end_s=3.6 + gap, text="we went",
                                                               words=words)])  # fmt: skip

    assert scenes(chunk_of(tmp_path, [(a, 3), (b, 3)], transcript=said(0.2))) == []
    assert len(scenes(chunk_of(tmp_path, [(a, 3), (b, 3)], transcript=said(0.8)))) == 1
    assert len(scenes(chunk_of(tmp_path, [(a, 3), (b, 3)]))) == 1


def test_transitions_start_scenes_but_not_at_the_edges(tmp_path):
    """A fade through black and a dissolve start scenes even between alike pictures (in a video that uses them,
    a plain cut to a new angle does not); a fade in at 0 s opens the video and is no scene change."""
    a = place(5, 40)
    shots = [(angle(a, 0, 0), 3), (angle(a, 100, 50), 3), (angle(a, 300, 100), 3), (angle(a, 200, 200), 3)]
    chunk = chunk_of(tmp_path, shots, transitions={1: "dissolve", 3: "fade_in"})
    chunk.markers.insert(0, TemporalMarker(type="shot_boundary", start_s=0.0, end_s=0.5, label="fade_in",
                                           confidence=1, plugin="t", attributes={"transition": "fade_in"}))  # fmt: skip
    found = scenes(chunk)
    assert [(m.attributes["transition"], m.attributes["starts_at_s"]) for m in found] == [
        ("dissolve", 2.5),
        ("fade", 8.5),
    ]


def test_one_shot_is_one_scene_and_a_broken_keyframe_is_loud(tmp_path):
    chunk = chunk_of(tmp_path, [(place(6, 0), 5)])
    assert scenes(chunk) == []
    chunk = chunk_of(tmp_path, [(place(6, 0), 5), (place(7, 90), 5)])
    Path(chunk.keyframes[1].path or "").write_bytes(b"not a jpeg")
    with pytest.raises(PluginError, match="not a readable image"):
        scenes(chunk)
