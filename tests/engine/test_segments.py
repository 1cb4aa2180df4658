"""Parallel time segments give the same analysis as one pass, and fail as clearly.

The segment boundaries are put where joining is hardest: in the middle of a dissolve, of a face on
screen and of a black stretch. Worker processes are real ``python -c`` processes decoding the real file.
"""

from __future__ import annotations

import json
import math
import textwrap

import dagster as dg
import pytest

from vidintel.plugins.local_shots import LocalShotsPlugin
from vidintel.plugins.local_technical_cues import LocalTechnicalCuesPlugin
from vidintel.plugins.opencv_faces import OpenCVFacesPlugin
from vidintel_pipeline.engine.keyframes import KeyframeSelector
from vidintel_pipeline.engine.runner import merge_markers, run_frame_plugins
from vidintel_pipeline.engine.segments import Segment, analyze_segments, margin_for, plan_segments
from vidintel_pipeline.media.ffmpeg import MediaError
from vidintel_pipeline.plugin_api.contracts import AnalysisConfig, ChunkInfo
from vidintel_pipeline.plugin_api.registry import PluginRegistry


def _source(path, truth) -> ChunkInfo:
    return ChunkInfo(project_id="p", video_id="v", path=str(path), start_s=0, end_s=truth.duration_s)


def _begun(plugins, source):
    for p in plugins:
        p.begin(source, AnalysisConfig())
    return plugins


def _cut_at(bounds: list[float], margin: float) -> list[Segment]:
    edges = [0.0, *bounds, math.inf]
    return [Segment(a, b, max(0.0, a - margin), b + margin) for a, b in zip(edges, edges[1:], strict=False)]


def test_plan_segments_cover_the_video_once():
    assert len(plan_segments(200.0, workers=2, margin_s=7.5)) == 1  # too short to pay for a margin
    assert len(plan_segments(3600.0, workers=1, margin_s=7.5)) == 1  # one CPU: one pass
    two = plan_segments(333.0, workers=2, margin_s=7.5)
    assert [(s.core_start, s.core_end) for s in two] == [(0.0, 166.5), (166.5, math.inf)]
    assert (two[0].decode_start, two[0].decode_end, two[1].decode_start) == (0.0, 174.0, 159.0)
    hour = plan_segments(3600.0, workers=2, margin_s=7.5)
    assert len(hour) == 6  # more segments than workers, so that both finish together
    assert hour[0].core_start == 0.0 and hour[-1].core_end == math.inf
    assert all(a.core_end == b.core_start for a, b in zip(hour, hour[1:], strict=False))
    assert len(plan_segments(30.0, workers=2, margin_s=1.0, shortest_s=5.0)) == 2


def test_margin_is_the_widest_plugin_context():
    shots, cues, faces = LocalShotsPlugin(), LocalTechnicalCuesPlugin(), OpenCVFacesPlugin()
    assert margin_for([shots, cues, faces]) == pytest.approx(4.0 + 3.0 + 0.5)
    assert margin_for([cues, faces]) == pytest.approx(2.5)

    class WholeVideo(LocalShotsPlugin):
        segment_context_s = None  # a plugin that must see the whole video forces one pass

    assert margin_for([cues, WholeVideo()]) is None


def test_segments_split_mid_event_match_one_pass(demo_video, monkeypatch):
    path, truth = demo_video
    source = _source(path, truth)
    monkeypatch.setenv("VIDINTEL_DECODE_WORKERS", "1")
    one_kf = KeyframeSelector()
    one, frames, passes = run_frame_plugins(
        source,
        _begun([LocalShotsPlugin(), LocalTechnicalCuesPlugin(), OpenCVFacesPlugin()], source),
        AnalysisConfig(),
        keyframes=one_kf,
    )
    assert passes == 1

    plugins = _begun([LocalShotsPlugin(), LocalTechnicalCuesPlugin(), OpenCVFacesPlugin()], source)
    # mid-dissolve (6-7 s), mid-face (10-13 s), mid-black (19.2-20.2 s)
    segments = _cut_at([6.5, 11.5, 19.7], margin_for(plugins))
    seg_kf = KeyframeSelector()
    out = analyze_segments(source, plugins, AnalysisConfig(), segments, keyframes=seg_kf, workers=2)

    assert not out.errors
    assert out.frames > frames  # the margins are decoded twice
    frame = 1.0 / truth.fps
    for name, markers in one.items():
        expected = merge_markers(markers)
        got = merge_markers(out.markers[name])
        assert [(m.type, m.label) for m in got] == [(m.type, m.label) for m in expected], name
        for g, e in zip(got, expected, strict=False):
            assert g.start_s == pytest.approx(e.start_s, abs=frame + 1e-6), (name, g, e)
            assert g.end_s == pytest.approx(e.end_s, abs=frame + 1e-6), (name, g, e)
    labels = {m.label for ms in out.markers.values() for m in ms}
    assert {"cut", "dissolve", "fade_out", "fade_in", "face", "black_frames", "color_bars"} <= labels
    # one keyframe candidate per 1 s bucket, as in one pass (a bucket split by a boundary gives two)
    serial = one_kf.flush()
    assert {int(c.time_s) for c in out.candidates} == {int(c.time_s) for c in serial}
    assert len(out.candidates) <= len(serial) + 3


PLUGIN = """
import os, signal
from vidintel_pipeline.plugin_api.contracts import PluginInfo
from vidintel_pipeline.plugin_api.frame_plugin import FramePlugin


class Misbehaving(FramePlugin):
    segment_context_s = 1.0

    def get_plugin_info(self):
        return PluginInfo(plugin_name="misbehaving", plugin_version="0.1", supported_events=["x"],
                          description="raises, or kills its own process, after {after} s")

    def process(self, frame):
        if frame.time_s > {after}:
            if "{how}" == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("lost its footing at %.2f s" % frame.time_s)

    def end(self):
        return []
"""


def _misbehaving(tmp_path, how: str, after: float):
    folder = tmp_path / f"plugins_{how}"
    folder.mkdir()
    (folder / "misbehaving.py").write_text(textwrap.dedent(PLUGIN.format(how=how, after=after)))
    reg = PluginRegistry()
    reg.discover_plugins(folder)  # loaded under a generated module name: the workers must find it by file
    assert not reg.errors, reg.errors
    return reg.get_plugin("misbehaving")


def test_a_plugin_that_raises_in_a_segment_leaves_the_others_whole(demo_video, tmp_path):
    path, truth = demo_video
    source = _source(path, truth)
    plugins = _begun([_misbehaving(tmp_path, "raise", 15.0), LocalShotsPlugin()], source)
    out = analyze_segments(source, plugins, AnalysisConfig(), _cut_at([12.0], 7.5), keyframes=None, workers=2)
    assert "RuntimeError: lost its footing" in out.errors["misbehaving"]
    cuts = sorted(m.start_s for m in out.markers["local_shots"] if m.label == "cut")
    assert cuts == pytest.approx(truth.cuts, abs=1.0 / truth.fps + 1e-6)


def test_a_killed_segment_process_is_a_clear_media_error(demo_video, tmp_path):
    path, truth = demo_video
    source = _source(path, truth)
    plugins = _begun([_misbehaving(tmp_path, "kill", 15.0), LocalShotsPlugin()], source)
    with pytest.raises(MediaError, match=r"decoding segment 12-24 s failed \(killed by signal 9\)") as caught:
        analyze_segments(source, plugins, AnalysisConfig(), _cut_at([12.0], 1.5), keyframes=None, workers=2)
    assert caught.value.retryable  # unlike a corrupt file, a killed process may succeed when the step retries


def test_a_corrupt_segment_is_a_clear_media_error(tmp_path, demo_video):
    path, truth = demo_video
    broken = tmp_path / "broken.mp4"
    data = bytearray(path.read_bytes())
    data[len(data) // 2 :] = b"\0" * (len(data) - len(data) // 2)  # the second half of the file is zeros
    broken.write_bytes(bytes(data))
    source = _source(broken, truth)
    plugins = _begun([LocalShotsPlugin()], source)
    with pytest.raises(MediaError, match=r"broken\.mp4: decoding failed at frame \d+"):
        analyze_segments(source, plugins, AnalysisConfig(), _cut_at([12.0], 7.5), keyframes=None, workers=2)


def test_ingest_in_segments_matches_one_pass(home, demo_video, monkeypatch):
    """Through the whole Dagster job: segments forced on the 24 s demo give the memory one pass gives."""
    from vidintel_pipeline.runtime import in_process
    from vidintel_pipeline.runtime.instance import get_instance

    path, truth = demo_video
    memories, decoded = {}, {}
    for video_id, workers in (("one-pass", "1"), ("segments", "2")):
        monkeypatch.setenv("VIDINTEL_DECODE_WORKERS", workers)
        monkeypatch.setenv("VIDINTEL_MIN_SEGMENT_S", "8")
        info = in_process.ingest(str(path), "acme", video_id, quiet=True)
        memories[video_id] = json.loads((home / f"data/output/projects/acme/memories/{video_id}.json").read_text())
        ev = get_instance().get_latest_materialization_event(dg.AssetKey("temporal_markers"))
        assert ev.run_id == info["run_id"]
        decoded[video_id] = {k: v.value for k, v in ev.asset_materialization.metadata.items()}
    assert decoded["one-pass"]["decode_segments"] == 1 and decoded["segments"]["decode_segments"] == 2
    frame = 1.0 / truth.fps
    one, seg = memories["one-pass"]["markers"], memories["segments"]["markers"]
    assert [(m["type"], m["label"]) for m in seg] == [(m["type"], m["label"]) for m in one]
    for a, b in zip(seg, one, strict=False):
        assert a["start_s"] == pytest.approx(b["start_s"], abs=frame + 1e-6) and a["end_s"] == pytest.approx(
            b["end_s"], abs=frame + 1e-6
        )
    assert len(memories["segments"]["keyframes"]) == len(memories["one-pass"]["keyframes"])
