"""Asset checks run with the ingest, per partition: they pass on a good run and fail where they should."""

from __future__ import annotations

import textwrap

import dagster as dg

from vidintel_pipeline.runtime import in_process
from vidintel_pipeline.runtime.instance import get_instance

BROKEN = textwrap.dedent("""
    from vidintel_pipeline.plugin_api.contracts import BaseTemporalPlugin, PluginError

    class Broken(BaseTemporalPlugin):
        def get_plugin_info(self):
            return {"plugin_name": "broken", "plugin_version": "1.0.0", "supported_events": ["shot_detection"]}

        async def detect_markers(self, chunk, config):
            raise PluginError("provider down", plugin="broken")
""")


def _image(md: str, mime: str):
    import base64

    import cv2
    import numpy as np

    prefix = f"(data:{mime};base64,"
    assert prefix in md, md[:80]
    data = base64.b64decode(md.split(prefix, 1)[1].rstrip(")"))
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def checks(run_id: str) -> dict[str, tuple[bool, str, dict]]:
    out = {}
    for e in get_instance().all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        ev = e.dagster_event.event_specific_data
        out[ev.check_name] = (ev.passed, ev.severity.value, {k: v.value for k, v in ev.metadata.items()})
    return out


def test_checks_pass_on_a_good_ingest_and_fail_where_they_should(home, demo_video, tmp_path, monkeypatch):
    good = checks(in_process.ingest(str(demo_video[0]), "chk", "good", quiet=True)["run_id"])
    assert set(good) == {"markers_in_range", "no_plugin_failed", "transcript_when_speech", "cost_within_budget",
                         "exports_parse"}  # fmt: skip
    assert all(passed for passed, _, _ in good.values()), good
    assert good["exports_parse"][2]["items_read"]["edl"] >= 5  # one event per shot of the demo

    # the pictures in memory's metadata decode as images of the right shape; the plugin runs are a table
    ev = get_instance().get_latest_materialization_event(dg.AssetKey("memory")).asset_materialization
    meta = ev.metadata
    strip = _image(meta["timeline"].value, "image/png")
    assert strip.shape[1] == 960 and strip.shape[0] > 100
    sheet = _image(meta["contact_sheet"].value, "image/jpeg")
    assert sheet.shape[0] > 80 and sheet.shape[1] > 300  # the demo's keyframes, 6 to a row
    assert len(meta["timeline"].value) + len(meta["contact_sheet"].value) < 200_000  # small enough for the event log
    # the preview is short enough for the UI to render inline (under 1,000 characters), its lanes drawn: the demo's
    # speech (lane 7 of 8) is colour at its first second, and shots (lane 1) fill the width
    assert len(meta["timeline_preview"].value) < 1000
    preview = _image(meta["timeline_preview"].value, "image/png")
    assert preview.shape == (40, 320, 3)
    assert preview[32, 10].tolist() != [250, 250, 250] and (preview[2] != 250).any(axis=1).all()
    rows = {r.data["plugin"]: r.data for r in meta["plugin_runs"].records}
    assert {"local_shots", "faster_whisper"} <= set(rows) and all(r["status"] == "ok" for r in rows.values())
    # the project report lists every plugin that ran, derived ones too (local_scenes, local_prompt: $0)
    costs = get_instance().get_latest_materialization_event(dg.AssetKey("project_costs")).asset_materialization
    listed = set(costs.metadata["projects"].value["chk"]["by_plugin"])
    assert {"local_shots", "local_scenes", "local_prompt", "faster_whisper"} <= listed, listed

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text(BROKEN)
    monkeypatch.setenv("VIDINTEL_PLUGIN_PATH", str(plugins))
    run = in_process.ingest(
        str(demo_video[0]),
        "chk",
        "bad",
        quiet=True,
        resources_config={
            "temporal_plugins": {"config": {"plugins": ["local_shots", "local_silence", "broken"]}},
            "transcription": {"config": {"enabled": False}},  # the demo speaks: no transcript is a finding
        },
    )
    bad = checks(run["run_id"])
    assert bad["no_plugin_failed"][:2] == (False, "WARN") and "broken" in bad["no_plugin_failed"][2]["failed"]
    assert bad["transcript_when_speech"][:2] == (False, "WARN")
    assert bad["transcript_when_speech"][2]["audible_s"] >= 3 and bad["transcript_when_speech"][2]["words"] == 0
    assert bad["markers_in_range"][0] and bad["exports_parse"][0]


def test_stale_lists_videos_analysed_under_other_plugin_versions(home, demo_video, monkeypatch, capsys):
    """The analysis assets carry a code version from their default plugins' versions; a video materialized under
    another one is listed by `vidintel stale` and re-ingested from its stored source by `--run`."""
    import json

    from vidintel_pipeline import cli
    from vidintel_pipeline.defs import versions

    first = in_process.ingest(str(demo_video[0]), "old", "clip", quiet=True)
    assert cli.main(["stale", "old", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stale"] == []  # analysed under today's versions
    # as after an upgrade of local_shots: the current code version of temporal_markers moves on
    monkeypatch.setitem(versions.VERSIONS, "temporal_markers", versions.plugins_code_version(["local_shots@2"]))
    assert cli.main(["stale", "old", "--json"]) == 0
    stale = json.loads(capsys.readouterr().out)["stale"]
    assert [(s["partition"], list(s["assets"])) for s in stale] == [("old__clip", ["temporal_markers"])]
    assert cli.main(["stale", "old", "--run"]) == 0
    out = capsys.readouterr().out
    assert "re-ingested old__clip" in out and first["run_id"] not in out
    mats = (
        get_instance()
        .fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("memory"), asset_partitions=["old__clip"]), limit=5
        )
        .records
    )
    assert len(mats) == 2  # the re-run materialized it again, from the stored source
