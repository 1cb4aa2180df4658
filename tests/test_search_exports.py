"""Outputs of a project: exports that standard parsers accept, and search by words and by meaning."""

from __future__ import annotations

import csv
import io
import json

import dagster as dg
import pytest
import srt
import webvtt

from vidintel_pipeline import cli
from vidintel_pipeline.contracts import MemoryDocument
from vidintel_pipeline.exports import edl_fps
from vidintel_pipeline.instance import get_instance


def _meta(asset: str) -> dict:
    ev = get_instance().get_latest_materialization_event(dg.AssetKey(asset))
    return {k: v.value for k, v in ev.asset_materialization.metadata.items()}


@pytest.fixture
def project(home, demo_video, hard_video):
    """Two videos of project acme ingested end to end (the ingest job writes exports and the index)."""
    cli.ingest(str(demo_video[0]), "acme", "launch", quiet=True)
    first = _meta("search_index")
    cli.ingest(str(hard_video[0]), "acme", "hard", quiet=True)
    return {"out": home / "data/output/projects/acme", "first_index": first, "second_index": _meta("search_index"),
            "truth": demo_video[1]}


def test_exports_parse_and_edl_matches_the_shots(project, capsys):
    out, truth = project["out"], project["truth"]
    memory = MemoryDocument.model_validate_json((out / "memories/launch.json").read_text())
    subs = list(srt.parse((out / "exports/launch.srt").read_text()))
    assert subs and all(s.start < s.end for s in subs)
    assert all(a.end <= b.start for a, b in zip(subs, subs[1:]))  # monotonic, no overlap
    assert "revenue" in " ".join(s.content for s in subs).lower()
    vtt = webvtt.from_buffer(io.StringIO((out / "exports/launch.vtt").read_text()))
    assert [c.text for c in vtt] == [s.content for s in subs]
    rows = list(csv.DictReader(io.StringIO((out / "exports/launch.csv").read_text())))
    assert len(rows) == len(memory.markers) and {r["label"] for r in rows} >= {"cut", "color_bars"}
    assert json.loads((out / "exports/launch.json").read_text())["video_id"] == "launch"

    # EDL: one event per shot; each source in-point after the first is a shot boundary, on the right frame
    fps = edl_fps(memory)
    events = [line.split() for line in (out / "exports/launch.edl").read_text().splitlines() if line[:3].isdigit()]

    def frames(tc: str) -> int:
        h, m, s, f = map(int, tc.split(":"))
        return ((h * 60 + m) * 60 + s) * fps + f

    src_in = [frames(e[4]) for e in events]
    bounds = sorted({round(m.start_s * fps) for m in memory.markers if m.type == "shot_boundary"})
    assert src_in == [0] + bounds
    for cut in truth.cuts:
        assert any(abs(f - cut * fps) <= 1 for f in src_in), cut
    rec = [(frames(e[6]), frames(e[7])) for e in events]
    assert rec[0][0] == 0 and all(a[1] == b[0] for a, b in zip(rec, rec[1:]))  # laid end to end
    assert frames(events[-1][5]) == round(memory.duration_s * fps)

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
