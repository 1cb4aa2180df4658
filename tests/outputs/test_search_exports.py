"""Outputs of a project: exports that standard parsers accept, and search by words and by meaning."""

from __future__ import annotations

import csv
import html
import io
import json
from fractions import Fraction
from pathlib import Path

import cv2
import dagster as dg
import numpy as np
import opentimelineio as otio
import pytest
import srt
import webvtt

from vidintel_pipeline import cli
from vidintel_pipeline.plugin_api.contracts import MemoryDocument
from vidintel_pipeline.runtime import in_process
from vidintel_pipeline.runtime.instance import get_instance


def _meta(asset: str) -> dict:
    ev = get_instance().get_latest_materialization_event(dg.AssetKey(asset))
    return {k: v.value for k, v in ev.asset_materialization.metadata.items()}


@pytest.fixture
def project(home, demo_video, hard_video):
    """Two videos of project acme ingested end to end (the ingest job writes exports and the index)."""
    in_process.ingest(str(demo_video[0]), "acme", "launch", quiet=True)
    first = _meta("search_index")
    in_process.ingest(str(hard_video[0]), "acme", "hard", quiet=True)
    return {
        "out": home / "data/output/projects/acme",
        "first_index": first,
        "second_index": _meta("search_index"),
        "truth": demo_video[1],
    }


def _decode_jpeg(b64: str):
    import base64

    return cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_COLOR)


def test_exports_parse_and_edl_matches_the_shots(project, capsys):
    out, truth = project["out"], project["truth"]
    memory = MemoryDocument.model_validate_json((out / "memories/launch.json").read_text())
    subs = list(srt.parse((out / "exports/launch.srt").read_text()))
    assert subs and all(s.start < s.end for s in subs)
    assert all(a.end <= b.start for a, b in zip(subs, subs[1:], strict=False))  # monotonic, no overlap
    assert "revenue" in " ".join(s.content for s in subs).lower()
    vtt = webvtt.from_buffer(io.StringIO((out / "exports/launch.vtt").read_text()))
    assert [html.unescape(c.text) for c in vtt] == [s.content for s in subs]
    rows = list(csv.DictReader(io.StringIO((out / "exports/launch.csv").read_text())))
    assert len(rows) == len(memory.markers) and {r["label"] for r in rows} >= {"cut", "color_bars"}
    assert json.loads((out / "exports/launch.json").read_text())["video_id"] == "launch"

    # timelines: one event per shot; each source in-point after the first is a shot boundary, on the right frame
    rate = float(Fraction(memory.source["fps_rational"]))
    for fmt, adapter, name in (("edl", "cmx_3600", "launch.edl"), ("otio", "otio_json", "launch.otio"),
                               ("fcpxml", "fcp_xml", "launch.fcp7.xml")):  # fmt: skip
        text = (out / "exports" / name).read_text()
        kw = {"rate": rate} if adapter == "cmx_3600" else {}
        clips = list(otio.adapters.read_from_string(text, adapter, **kw).find_clips())
        src = [
            (round(c.source_range.start_time.value), round(c.source_range.end_time_exclusive().value)) for c in clips
        ]
        bounds = sorted({round(m.start_s * rate) for m in memory.markers if m.type == "shot_boundary"})
        assert [a for a, _ in src] == [0, *bounds], fmt  # the demo has no start timecode: from 00:00:00:00
        assert all(a[1] == b[0] for a, b in zip(src, src[1:], strict=False)) and src[-1][1] == round(
            memory.duration_s * rate
        )
        for cut in truth.cuts:
            assert any(abs(a - cut * rate) <= 1 for a, _ in src), (fmt, cut)
    assert "NON-DROP FRAME" in (out / "exports/launch.edl").read_text()

    assert cli.main(["export", "acme", "launch", "--format", "vtt", "-o", "-"]) == 0
    assert capsys.readouterr().out.startswith("WEBVTT")
    assert cli.main(["export", "acme", "nope", "--format", "srt"]) == 2


def test_search_by_words_labels_and_meaning_with_incremental_index(project, capsys):
    first, second = project["first_index"], project["second_index"]
    assert first["reindexed"] == ["launch"] and second["reindexed"] == ["hard"]  # only the new video was indexed
    assert second["videos_in_project"] == 2 and second["semantic_entries"] == second["entries"] > 0

    def top(query, mode="hybrid"):
        assert cli.main(["search", "acme", query, "--json", "--mode", mode]) == 0
        return json.loads(capsys.readouterr().out)

    hit = top("quarterly revenue")[0]
    assert hit["video_id"] == "launch" and hit["kind"] == "transcript" and "revenue" in hit["text"].lower()
    assert "words: quarterly, revenue" in hit["why"] and hit["keyframe_uri"]
    bars = top("color bars", mode="text")[0]
    assert bars["kind"] == "marker" and bars["text"].startswith("color bars")
    # different words, same meaning: only the embedding can find this
    meaning = top("how much did sales go up", mode="semantic")[0]
    assert "revenue" in meaning["text"].lower() and meaning["why"].startswith("meaning:")
    assert top("zebra xylophone", mode="text") == []


@pytest.fixture(scope="module")
def titled_video(tmp_path_factory):
    """10 s, 1280x720, GOP of 1 s: two titles (one a paraphrase target), a cut at 5 s and the revenue sentence.

    The backgrounds carry no text of their own (testsrc2 draws a timecode, which OCR rightly reads)."""
    from vidintel_pipeline.media.samples import Shot, render

    path = tmp_path_factory.mktemp("titled") / "titled.mp4"
    truth = render(
        path,
        [Shot("gradient", 5.0), Shot("cells", 5.0)],
        size=(1280, 720),
        gop=25,
        titles=(("QUARTERLY RESULTS", 1.0, 4.0), ("Weather Forecast", 6.0, 9.0)),
        speech=(("speech_a", 0.3),),
    )
    return path, truth


def test_ocr_prompt_markers_and_a_reel_through_dagster(home, titled_video, demo_video, capsys):
    import subprocess

    import av

    from vidintel_pipeline.media import probe
    from vidintel_pipeline.media.ffmpeg import ffmpeg_exe

    path, truth = titled_video
    plugins = "local_shots,local_technical_cues,local_ocr,local_prompt"
    assert (
        cli.main(
            [
                "ingest",
                str(path),
                "--project",
                "acme",
                "--video-id",
                "titled",
                "--quiet",
                "--plugins",
                plugins,
                "--prompt",
                "financial earnings",
            ]
        )
        == 0
    )
    capsys.readouterr()
    memory = MemoryDocument.model_validate_json((home / "data/output/projects/acme/memories/titled.json").read_text())

    # OCR: each title read word for word, over its time on screen (samples every second: +-0.5 s)
    texts = [m for m in memory.markers if m.type == "text_in_video"]
    for t in truth.titles:
        hit = [m for m in texts if m.label == t["text"]]
        assert len(hit) == 1, (t, texts)
        assert abs(hit[0].start_s - t["start_s"]) <= 0.55 and abs(hit[0].end_s - t["end_s"]) <= 0.55, (t, hit)
    assert {m.label for m in texts} == {t["text"] for t in truth.titles}  # nothing else was "read"

    # the prompt shares no word with the title or the sentence: found by meaning, each saying what matched
    # the title and the sentence overlap in time, so they are one moment with both as evidence
    prompted = [m for m in memory.markers if m.type == "custom_prompt"]
    assert len(prompted) == 1, prompted
    evidence = {e["source"]: e["text"] for e in prompted[0].attributes["evidence"]}
    assert evidence["text_in_video"] == "QUARTERLY RESULTS" and "revenue" in evidence["transcript"].lower()
    assert "Weather Forecast" not in evidence.values() and "pipeline" not in evidence["transcript"]
    assert prompted[0].start_s <= truth.speech[0]["start_s"] + 0.3 and prompted[0].end_s >= 3.4
    meta = _meta("derived_markers")
    assert meta["prompt"] == "financial earnings" and meta["markers"] == len(prompted)

    # search finds the on-screen text as a marker, ranked first
    assert cli.main(["search", "acme", "weather forecast", "--json", "--mode", "text"]) == 0
    first = json.loads(capsys.readouterr().out)[0]
    assert first["kind"] == "marker" and first["text"].lower().startswith("weather forecast text in video"), first

    # a reel of every title, cut by the compile_reel job: duration and sources match the manifest, it decodes fully
    assert cli.main(["compile", "acme", "--marker-type", "text_in_video", "--max-seconds", "30", "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    reel = home / "data/output/projects/acme/compilations" / f"{manifest['name']}.mp4"
    assert manifest["uri"].endswith(reel.name) and reel.is_file()
    assert [c["video_id"] for c in manifest["clips"]] == ["titled", "titled"]
    # keyframes every second: the clip ending on a keyframe is copied whole, the other gets a re-encoded head
    assert manifest["method"] == "smart_copy" and manifest["copied_s"] >= 6.0 and 0 < manifest["reencoded_s"] <= 1.0
    want = sum(c["end_s"] - c["start_s"] for c in manifest["clips"])
    info = probe(reel)
    assert abs(info.duration_s - want) <= 0.1 and abs(manifest["duration_s"] - info.duration_s) < 1e-3
    for c, t in zip(manifest["clips"], truth.titles, strict=False):  # each clip covers its title with the padding
        assert c["start_s"] <= t["start_s"] and c["end_s"] >= t["end_s"] - 0.55
        assert c["source_uri"].endswith("/source/titled.mp4")
    proc = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-xerror", "-i", str(reel), "-f", "null", "-"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    with av.open(str(reel)) as c:
        times = [f.time for f in c.decode(video=0)]
    assert len(times) == round(want * 25) or abs(len(times) - want * 25) <= len(manifest["clips"])
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) < 0.05  # no holes where the parts meet
    meta = _meta("compilation")
    assert meta["reel_uri"] == str(reel) and manifest["uri"] == reel.as_uri() and meta["clips"] == 2
    # the reel as a timeline into its source: each clip's source range is the manifest's span, on source frames
    timeline = otio.adapters.read_from_file(str(reel.with_suffix(".otio")))
    spans = [
        (c.source_range.start_time.value, c.source_range.end_time_exclusive().value) for c in timeline.find_clips()
    ]
    assert spans == [(round(c["start_s"] * 25), round(c["end_s"] * 25)) for c in manifest["clips"]]
    assert [c.media_reference.target_url for c in timeline.find_clips()] == [c["source_uri"] for c in manifest["clips"]]
    assert manifest["timeline_uri"].endswith(".otio") and meta["timeline_uri"] == str(reel.with_suffix(".otio"))

    # by query, across two videos of different sizes: every clip is re-encoded to the first one's format
    in_process.ingest(str(demo_video[0]), "acme", "launch", quiet=True)
    assert cli.main(["compile", "acme", "quarterly revenue", "--max-seconds", "9", "--json"]) == 0
    mixed = json.loads(capsys.readouterr().out)
    assert {c["video_id"] for c in mixed["clips"]} == {"launch", "titled"} and mixed["method"] == "reencode"
    for c in mixed["clips"]:  # each clip holds the sentence the search found
        spoken = [
            s for s in (truth.speech if c["video_id"] == "titled" else demo_video[1].speech) if "revenue" in s["text"]
        ]
        assert c["start_s"] <= spoken[0]["start_s"] + 0.1 and "revenue" in c["why"].lower()
    reel = home / "data/output/projects/acme/compilations" / f"{mixed['name']}.mp4"
    info = probe(reel)
    assert (
        info.duration_s <= 9.05 and abs(info.duration_s - sum(c["end_s"] - c["start_s"] for c in mixed["clips"])) <= 0.1
    )
    assert (info.width, info.height) == (640, 360)  # the first clip's (videos in id order: launch, then titled)
    proc = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-xerror", "-i", str(reel), "-f", "null", "-"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and not proc.stderr, proc.stderr

    # the search job: launchpad config in, results and their URI out
    from vidintel_pipeline.definitions import defs

    run = defs.resolve_job_def("search_moments").execute_in_process(
        instance=get_instance(),
        run_config={"ops": {"search_results": {"config": {"project_id": "acme", "query": "weather forecast"}}}},
    )
    assert run.success
    meta = _meta("search_results")
    saved = json.loads((home / "data/output" / meta["results_uri"].split("/data/output/", 1)[1]).read_text())
    assert saved["moments"][0]["text"].lower().startswith("weather forecast") and meta["moments"] == len(
        saved["moments"]
    )
    # each result row opens with its moment's picture: the keyframe of its video nearest the moment
    rows = meta["results"].splitlines()[2:]
    assert len(rows) == len(saved["moments"]) and all("](data:image/jpeg;base64," in r for r in rows), rows[:1]
    first = saved["moments"][0]
    index = json.loads(
        (home / f"data/ingest/projects/acme/videos/{first['video_id']}/keyframes/keyframes.json").read_text()
    )
    mid = (first["start_s"] + first["end_s"]) / 2
    nearest = min(index["keyframes"], key=lambda k: abs(k["time_s"] - mid))
    thumb = _decode_jpeg(rows[0].split("](data:image/jpeg;base64,", 1)[1].split(")", 1)[0])
    frame = cv2.imread(str(home / f"data/ingest/projects/acme/videos/{first['video_id']}/keyframes"
                           / Path(nearest["uri"]).name))  # fmt: skip
    small = cv2.resize(frame, (thumb.shape[1], thumb.shape[0]), interpolation=cv2.INTER_AREA)
    assert thumb.shape[1] == 112 and np.abs(small.astype(int) - thumb.astype(int)).mean() < 12

    # clear errors for a bad request
    assert cli.main(["compile", "nobody", "anything"]) == 2
    assert "no memories" in capsys.readouterr().err
    assert cli.main(["compile", "acme", "zebra xylophone quantum", "--mode", "text"]) == 2
    assert "no moment matched" in capsys.readouterr().err
