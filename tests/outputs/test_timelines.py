"""Timelines editors trust: every EDL, OTIO and FCP 7 XML event on its exact source frame, DF and NDF, read back
with OpenTimelineIO's own adapters; subtitles read back with independent parsers (srt, webvtt-py)."""

from __future__ import annotations

import html
import io
import subprocess
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest
import srt
import webvtt

from vidintel.plugins.local_shots import LocalShotsPlugin
from vidintel_pipeline.engine.runner import run_frame_plugins
from vidintel_pipeline.media.ffmpeg import ffmpeg_exe
from vidintel_pipeline.media.probe import probe
from vidintel_pipeline.outputs.exports import render
from vidintel_pipeline.plugin_api.contracts import (
    AnalysisConfig,
    ChunkInfo,
    MemoryDocument,
    TranscriptionResult,
    TranscriptSegment,
)

COLORS = ["0x203040", "0xc08020", "0x20a060", "0x8030b0", "0xd0d0d0"]


def render_cuts(path: Path, rate: str, total: int, cuts: list[int], timecode: str) -> None:
    """Flat colour shots cut at exactly ``cuts`` (frame numbers), ``total`` frames, with a start timecode."""
    edges = [0, *cuts, total]
    parts = [
        f"color=c={COLORS[i % len(COLORS)]}:s=64x36:r={rate},trim=end_frame={b - a},setpts=PTS-STARTPTS[s{i}]"
        for i, (a, b) in enumerate(zip(edges, edges[1:], strict=False))
    ]
    graph = ";".join(parts) + ";" + "".join(f"[s{i}]" for i in range(len(parts))) + f"concat=n={len(parts)}[v]"
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-filter_complex", graph, "-map", "[v]",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "600", "-timecode", timecode, str(path)],
        check=True,
    )  # fmt: skip


def detect(path: Path) -> MemoryDocument:
    """The shots as a run finds them (local_shots on the real decode), in a memory document with the probe's facts."""
    info = probe(path)
    chunk = ChunkInfo(project_id="p", video_id="v", path=str(path), start_s=0, end_s=info.duration_s, fps=info.fps)
    plugin = LocalShotsPlugin()
    plugin.begin(chunk, AnalysisConfig())
    outcome, _, _ = run_frame_plugins(chunk, [plugin], AnalysisConfig())
    source = info.as_dict() | {"key": f"projects/p/videos/v/source/{path.name}"}
    return MemoryDocument(project_id="p", video_id="v", duration_s=info.duration_s, markers=outcome[plugin.name],
                          source=source)  # fmt: skip


def events(edl: str, rate: float) -> list[tuple[int, int]]:
    """(source in, source out) frames of every event, read by OTIO's CMX3600 adapter."""
    tl = otio.adapters.read_from_string(edl, "cmx_3600", rate=rate)
    return [(round(c.source_range.start_time.value), round(c.source_range.end_time_exclusive().value))
            for c in tl.find_clips()]  # fmt: skip


CASES = [  # rate, frames, cuts, start timecode, drop frame, the first frame of that timecode
    ("30000/1001", 18000, [2000, 6001, 9500, 14000], "01:00:00;00", True, 107892),  # 10 minutes at 29.97 DF
    ("30000/1001", 18000, [2000, 6001, 9500, 14000], "01:00:00:00", False, 108000),  # ... and NDF
    ("24000/1001", 3000, [700, 1501, 2900], "00:59:59:00", False, 86376),
    ("25", 3000, [100, 1234, 2500], "10:00:00:00", False, 900000),
]


@pytest.mark.parametrize("rate, total, cuts, timecode, df, start", CASES)
def test_every_event_lands_on_its_exact_source_frame(tmp_path, rate, total, cuts, timecode, df, start):
    path = tmp_path / "cuts.mov"
    render_cuts(path, rate, total, cuts, timecode)
    doc = detect(path)
    assert Fraction(doc.source["fps_rational"]) == Fraction(rate) and doc.source["timecode"] == timecode
    found = sorted(round(m.start_s * Fraction(rate)) for m in doc.markers if m.type == "shot_boundary")
    assert found == cuts  # the detector's own frames, before any export
    r = float(Fraction(rate))
    want = [(start + a, start + b) for a, b in zip([0, *cuts], [*cuts, total], strict=False)]

    edl = render(doc, "edl")
    assert ("FCM: DROP FRAME" if df else "FCM: NON-DROP FRAME") in edl
    lines = [line.split() for line in edl.splitlines() if line[:3].isdigit()]
    assert all((";" in line[4]) == df for line in lines)  # DF timecodes only for a DF source
    assert lines[0][4] == timecode and lines[0][6] == timecode  # source and record start on the source clock
    assert events(edl, r) == want

    timeline = otio.adapters.read_from_string(render(doc, "otio"), "otio_json")
    clips = list(timeline.find_clips())
    got = [(round(c.source_range.start_time.value), round(c.source_range.end_time_exclusive().value)) for c in clips]
    assert got == want and all(c.source_range.start_time.rate == r for c in clips)
    assert timeline.global_start_time.value == start
    cut_markers = [m for c in clips for m in c.markers if m.metadata["vidintel"]["type"] == "shot_boundary"]
    assert sorted(round(m.marked_range.start_time.value) for m in cut_markers) == [start + c for c in cuts]
    assert all(0 < m.metadata["vidintel"]["confidence"] <= 1 for m in cut_markers)

    fcp = render(doc, "fcpxml")
    back = otio.adapters.read_from_string(fcp, "fcp_xml")
    assert [(round(c.source_range.start_time.value), round(c.source_range.end_time_exclusive().value))
            for c in back.find_clips()] == want  # fmt: skip
    assert ("<displayformat>DF</displayformat>" in fcp) == df and f"<string>{timecode}</string>" in fcp


def test_subtitles_escape_and_carry_speakers_for_independent_parsers():
    segs = [
        TranscriptSegment(start_s=0.5, end_s=2.0, text="Tom & Jerry say <hi> --> {now}", speaker="spk_0"),
        TranscriptSegment(start_s=2.5, end_s=4.0, text="plain words"),
    ]
    doc = MemoryDocument(project_id="p", video_id="v", duration_s=5, transcript=TranscriptionResult(segments=segs))
    vtt = render(doc, "vtt")
    assert "&amp;" in vtt and "&lt;hi&gt;" in vtt and "--&gt;" in vtt and "<v spk_0>" in vtt
    caps = list(webvtt.from_buffer(io.StringIO(vtt)))
    assert [(c.start, c.end, c.voice) for c in caps] == [("00:00:00.500", "00:00:02.000", "spk_0"),
                                                         ("00:00:02.500", "00:00:04.000", None)]  # fmt: skip
    assert html.unescape(caps[0].text) == "Tom & Jerry say <hi> --> {now}"
    subs = list(srt.parse(render(doc, "srt")))
    assert [s.content for s in subs] == ["[spk_0] Tom & Jerry say <hi> --> {now}", "plain words"]


def test_a_rate_smpte_timecode_lacks_is_counted_at_the_nearest_one(tmp_path):
    """A variable-rate phone video averages 20 fps: .otio keeps 20, the EDL and the XML count at 24 (OTIO refuses
    SMPTE timecode at 20), and the cuts land on the same instants."""
    path = tmp_path / "vfr.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-filter_complex",
         "testsrc2=s=160x90:r=30:d=2[a];color=c=navy:s=160x90:r=10:d=2[b];[a][b]concat=n=2:v=1:a=0[v]",
         "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-fps_mode", "vfr", str(path)],
        check=True,
    )  # fmt: skip
    doc = detect(path)
    assert Fraction(doc.source["fps_rational"]) == 20
    assert events(render(doc, "edl"), 24.0) == [(0, 48), (48, 96)]  # the cut at 2.0 s: frame 48 at 24 fps
    clips = list(otio.adapters.read_from_string(render(doc, "otio"), "otio_json").find_clips())
    assert [(c.source_range.start_time.value, c.source_range.start_time.rate) for c in clips] == [(0, 20), (40, 20)]
    assert len(list(otio.adapters.read_from_string(render(doc, "fcpxml"), "fcp_xml").find_clips())) == 2
