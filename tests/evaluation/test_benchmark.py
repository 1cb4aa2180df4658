"""Measured accuracy: the truth format, the scores, `vidintel plugins benchmark` on real footage, and compare."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from vidintel_pipeline.errors import UserError
from vidintel_pipeline.evaluation.scoring import score_markers, word_error_rate
from vidintel_pipeline.evaluation.truth import VideoTruth, load_truth, load_truth_dir

REPO = Path(__file__).resolve().parents[2]


class M:
    def __init__(self, type_, label, start, end=None, **attributes):
        self.type, self.label, self.start_s, self.end_s = type_, label, start, start if end is None else end
        self.attributes = attributes


def test_scores_match_one_to_one_within_the_tolerances(tmp_path):
    t = VideoTruth(
        "v",
        tmp_path / "v.mp4",
        25.0,
        cuts=[30, 76],
        gradual=[{"type": "dissolve", "start_frame": 100, "end_frame": 110}],
        spans={"color_bars": [(200, 209)]},
        scene_changes=[30],
    )
    markers = [
        M("shot_boundary", "cut", 31 / 25),  # a frame late: found
        M("shot_boundary", "cut", 32 / 25),  # a second marker for the same cut: false
        M("shot_boundary", "cut", 79 / 25),  # three frames late: false, and 76 missed
        M("shot_boundary", "fade_in", 104 / 25, 108 / 25),  # found as a boundary, misnamed as a dissolve
        M("technical_cue", "color_bars", 205 / 25, 215 / 25),  # 5 frames right, 5 false
        M("scene_change", "scene 2", 0.4, 0.9, starts_at_s=1.5),  # the scene starts 0.3 s from frame 30: found
    ]
    s = score_markers(markers, t, ["shot_detection", "dissolve", "color_bars", "scene_change", "face_detection"])
    assert (s["shot_detection"].tp, s["shot_detection"].fp, s["shot_detection"].fn) == (2, 2, 1)
    assert (s["dissolve"].tp, s["dissolve"].fp, s["dissolve"].fn) == (0, 0, 1)
    assert (s["color_bars"].tp, s["color_bars"].fp, s["color_bars"].fn) == (5, 5, 5)
    assert s["scene_change"].f1 == 1.0
    assert "face_detection" not in s  # not labelled: not scored
    unlabelled = VideoTruth("v", tmp_path / "v.mp4", 25.0)
    assert score_markers(markers, unlabelled, ["shot_detection", "scene_change"]) == {}
    assert word_error_rate("The cat sat.", "the cat sat") == 0.0
    assert word_error_rate("the cat sat on the mat", "the bat sat on mat") == pytest.approx(2 / 6)


def test_bad_truth_files_name_the_file_and_the_field(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    cases = {
        "notjson": ("{", "not readable JSON"),
        "unknown": (json.dumps({"video": "v.mp4", "fps": 25, "cutz": []}), "unknown keys"),
        "novideo": (json.dumps({"video": "missing.mp4", "fps": 25}), "does not exist"),
        "fps": (json.dumps({"video": "v.mp4", "fps": 0}), '"fps" must be'),
        "cuts": (json.dumps({"video": "v.mp4", "fps": 25, "cuts": [1.5]}), '"cuts" must be'),
        "gradual": (
            json.dumps({"video": "v.mp4", "fps": 25, "gradual": [{"type": "wipe", "start_frame": 1, "end_frame": 2}]}),
            '"gradual" entries',
        ),
        "bars": (json.dumps({"video": "v.mp4", "fps": 25, "color_bars": [[5, 2]]}), '"color_bars" must be'),
    }
    for name, (text, why) in cases.items():
        f = tmp_path / f"{name}.json"
        f.write_text(text)
        with pytest.raises(UserError, match=why) as exc:
            load_truth(f)
        assert str(f) in str(exc.value)
    with pytest.raises(UserError, match="no truth files"):
        load_truth_dir(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else tmp_path)


@pytest.fixture(scope="module")
def truth_dir(tmp_path_factory):
    """bikes (real, hand-labelled cuts and scene changes) and the same clip with every cut labelled 10 frames
    late: a plugin that finds the real cuts must score 0 there, so the score can fail."""
    sys.path.insert(0, str(REPO / "tests" / "plugins" / "real_footage"))
    from devset import real_clips

    bikes = real_clips()["bikes"]
    d = tmp_path_factory.mktemp("truth")
    cuts = [30, 76, 137, 187, 242]
    (d / "bikes.json").write_text(json.dumps({"video": str(bikes), "fps": 25, "cuts": cuts, "scene_changes": cuts}))
    (d / "bikes_late.json").write_text(json.dumps({"video": str(bikes), "fps": 25, "cuts": [c + 10 for c in cuts]}))
    return d


def test_benchmark_scores_real_footage_and_the_registry_selects_by_it(home, truth_dir, capsys):
    from vidintel_pipeline.cli import main
    from vidintel_pipeline.plugin_api.registry import PluginRegistry

    code = main(["plugins", "benchmark", "--truth", str(truth_dir), "--plugins", "local_shots,local_scenes", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    shots = report["plugins"]["local_shots"]
    assert shots["per_video"]["bikes"]["shot_detection"] == 1.0  # every hand-labelled cut, nothing else
    assert shots["per_video"]["bikes_late"]["shot_detection"] == 0.0  # the same markers against wrong truth
    assert shots["features"]["shot_detection"] == {"score": 0.5, "tp": 5, "fp": 5, "fn": 5, "videos": 2}
    assert report["plugins"]["local_scenes"]["features"]["scene_change"]["score"] == 1.0  # bikes: 5 of 5
    stored = json.loads(Path(report["stored_in"]).read_text())
    assert stored["local_shots"]["plugin_version"] and stored["local_shots"]["truth"] == str(truth_dir)

    reg = PluginRegistry.default()
    acc = reg.accuracy_of(reg.entries["local_shots"].info, ["shot_detection"])
    assert (acc.score, acc.basis) == (0.5, "measured")  # the stored figure, not the declared 1.0
    assert main(["plugins", "--json"]) == 0
    rows = {r["plugin_name"]: r for r in json.loads(capsys.readouterr().out)["plugins"]}
    assert rows["local_shots"]["measured_accuracy"]["features"]["shot_detection"] == 0.5
    assert rows["local_shots"]["declared_accuracy"]["shot_detection"] == 1.0
    assert rows["opencv_faces"]["measured_accuracy"] is None
    assert rows["opencv_faces"]["selection_accuracy"]["basis"] == "declared"


def test_benchmark_errors_are_clear(home, truth_dir, capsys):
    from vidintel_pipeline.cli import main

    assert main(["plugins", "benchmark", "--truth", str(truth_dir / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["plugins", "benchmark", "--truth", str(truth_dir), "--plugins", "no_such"]) == 2
    assert "unknown plugin(s) ['no_such']" in capsys.readouterr().err


def test_compare_lists_where_two_shot_detectors_disagree(home, demo_video, capsys):
    """local_shots and TransNetV2 on the demo: they agree on the hard cuts; TransNetV2 calls the fade through
    black a dissolve, local_shots a fade-out and a fade-in."""
    pytest.importorskip("torch")  # TransNetV2: the gpu extra; make test installs it
    from vidintel_pipeline.cli import main

    path, truth = demo_video
    assert main(["ingest", str(path), "--project", "ab", "--video-id", "demo", "--quiet",
                 "--plugins", "local_shots,transnetv2"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["compare", "ab", "demo", "--plugins", "local_shots,transnetv2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    print(json.dumps(report, indent=1))
    assert report["agree"] >= len(truth.cuts) - 1
    fades = [r for r in report["disagreements"] if r["only"] == "local_shots" and r["label"].startswith("fade")]
    assert fades and all(r["other"] is None or r["other"]["plugin"] == "transnetv2" for r in fades)
    assert main(["compare", "ab", "demo", "--plugins", "local_shots,opencv_faces"]) == 2
    assert "opencv_faces did not run on ab/demo" in capsys.readouterr().err
    assert main(["compare", "ab", "demo", "--plugins", "local_shots"]) == 2
