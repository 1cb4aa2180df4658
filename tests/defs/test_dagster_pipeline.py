"""The whole slice on a real (temporary) Dagster instance: materialization, metadata, failures, CLI."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from vidintel_pipeline.defs.partitions import PROJECT_TAG
from vidintel_pipeline.defs.progress_bar import ProgressBar
from vidintel_pipeline.runtime import in_process
from vidintel_pipeline.runtime.instance import get_instance

REPO = Path(__file__).resolve().parents[2]
VIDINTEL = str(Path(sys.executable).parent / "vidintel")


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _latest_metadata(instance, asset: str) -> dict:
    ev = instance.get_latest_materialization_event(dg.AssetKey(asset))
    assert ev is not None, f"{asset} was not materialized"
    return {k: v.value for k, v in ev.asset_materialization.metadata.items()}


def test_definitions_validate():
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "vidintel_pipeline.definitions"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("job", ["ingest_video", "ingest_video_gpu"])
def test_per_video_jobs_are_closed_under_their_dependencies(job):
    """The UI warns "Upstream data missing" when an asset launched from its page has an upstream no job of
    its own builds; and a step-routing executor would send a GPU step of the CPU job to a GPU worker."""
    from vidintel_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    selected = defs.resolve_job_def(job).asset_layer.selected_asset_keys
    assert dg.AssetKey("memory" if job == "ingest_video" else "gpu_analysis") in selected
    for key in selected:
        assert graph.get(key).parent_keys <= selected, (key, graph.get(key).parent_keys - selected)
    if job == "ingest_video":
        assert dg.AssetKey("gpu_analysis") not in selected


def test_ingest_materializes_every_asset_with_metadata(home, demo_video):
    path, truth = demo_video
    info = in_process.ingest(str(path), "acme", "launch-video", quiet=True)
    assert info["partition"] == "acme__launch-video"
    instance = get_instance()
    run = instance.get_run_by_id(info["run_id"])
    assert run.is_success and run.tags[PROJECT_TAG] == "acme" and run.tags["dagster/partition"] == "acme__launch-video"

    # the public memory contract, at the seed's output path
    mem_path = home / "data/output/projects/acme/memories/launch-video.json"
    memory = json.loads(mem_path.read_text())
    assert memory["project_id"] == "acme" and memory["video_id"] == "launch-video"
    assert memory["duration_s"] == pytest.approx(truth.duration_s, abs=0.1)
    for m in memory["markers"]:
        assert set(m) >= {"type", "start_s", "end_s", "label", "confidence", "plugin", "attributes"}
    labels = {m["label"] for m in memory["markers"]}
    assert {"cut", "dissolve", "fade_out", "fade_in", "black_frames", "color_bars", "silence", "face"} <= labels
    assert len([m for m in memory["markers"] if m["label"] == "cut"]) == len(truth.cuts)
    seg = memory["transcript"]["segments"][0]
    assert set(seg) >= {"start_s", "end_s", "text", "speaker", "words"}
    assert set(seg["words"][0]) >= {"start_s", "end_s", "word", "probability"}
    assert "revenue" in " ".join(s["text"] for s in memory["transcript"]["segments"]).lower()
    shots = len(truth.cuts) + len(truth.transitions) + 1
    assert len(memory["keyframes"]) >= shots - 1  # at least one per detected shot
    for kf in memory["keyframes"]:
        assert Path(kf["uri"].removeprefix("file://")).read_bytes()[:2] == b"\xff\xd8"  # a JPEG
    assert memory["cost"]["total_usd"] == 0.0 and "local_shots" in memory["cost"]["by_plugin"]

    # the seed's ingestion layout
    base = home / "data/ingest/projects/acme/videos/launch-video"
    assert {p.name for p in base.iterdir()} == {"source", "chunks", "keyframes", "transcripts", "metadata"}
    assert not list(base.rglob(".tmp-*"))

    # materialization metadata a user sees in the UI
    for asset in ("source_video", "video_chunks", "audio", "keyframes", "temporal_markers", "transcript", "memory"):
        meta = _latest_metadata(instance, asset)
        assert meta["cost/usd"] == 0.0, asset
        assert meta["video_seconds"] == pytest.approx(truth.duration_s, abs=0.1), asset
    tm = _latest_metadata(instance, "temporal_markers")
    dm = _latest_metadata(instance, "derived_markers")
    assert tm["markers"] + dm["markers"] == len(memory["markers"])
    # scenes: the dissolve and the fade through black each open one, and memory lists the scenes between them
    scenes = [m for m in memory["markers"] if m["type"] == "scene_change"]
    assert dm["markers_by_type"].get("scene_change") == len(scenes) and dm["scenes"] == len(scenes) + 1
    for t in truth.transitions:
        assert any(
            abs(m["start_s"] - t["start_s"]) <= 0.2 and m["attributes"]["transition"] != "cut" for m in scenes
        ), (
            t,
            scenes,
        )
    assert [s["start_s"] for s in memory["scenes"]] == [0.0] + [m["attributes"]["starts_at_s"] for m in scenes]
    assert memory["scenes"][-1]["end_s"] == pytest.approx(memory["duration_s"])
    assert {p["plugin"] for p in tm["plugins"]} == {
        "local_shots",
        "local_technical_cues",
        "opencv_faces",
        "local_silence",
    }
    assert all(p["version"] and p["status"] == "ok" for p in tm["plugins"])
    assert tm["cost/plugin/local_shots"] == 0.0 and tm["markers_uri"].startswith(str(home))
    tr = _latest_metadata(instance, "transcript")
    assert tr["words"] > 20 and tr["cost/plugin/faster_whisper"] == 0.0 and tr["language"] == "en"
    assert _latest_metadata(instance, "memory")["memory_uri"] == str(mem_path)  # a path: file:// links open nothing
    assert _latest_metadata(instance, "memory")["dagster/uri"] == mem_path.as_uri()

    # progress through the seed's phases is in the run's event log: each phase's start and end as observations
    from vidintel_pipeline.runtime.submit import phase_of

    told = [t for t in map(phase_of, instance.all_logs(info["run_id"])) if t]
    ended = {t["current_phase"] for t in told if t["phase_progress"] == 100.0}
    for phase in (
        "initializing",
        "chunking",
        "analyzing_temporal",
        "transcribing_audio",
        "building_memory",
        "finalizing",
    ):
        assert phase in ended, (phase, told)


def test_corrupt_video_fails_clearly_and_leaves_other_partitions_intact(home, demo_video):
    from vidintel.resources import VidintelStorage

    path, _ = demo_video
    in_process.ingest(str(path), "acme", "good", quiet=True)
    before = _digest_tree(home / "data")
    # a corrupt file dropped straight into storage (as a sensor would find it) bypasses the CLI's pre-check
    store = VidintelStorage().ingest().scoped("acme")
    store.put_bytes("projects/acme/videos/broken/source/broken.mp4", b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    instance = get_instance()
    instance.add_dynamic_partitions("videos", ["acme__broken"])
    from vidintel_pipeline.definitions import defs

    result = defs.resolve_job_def("ingest_video").execute_in_process(
        instance=instance, partition_key="acme__broken", raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "source_video"
    desc = failure.step_failure_data.user_failure_data.description
    assert "broken.mp4" in desc and "not a readable video" in desc
    after = _digest_tree(home / "data")
    del after["ingest/projects/acme/videos/broken/source/broken.mp4"]
    assert after == before  # nothing else written, nothing of the good partition touched


def test_unknown_partition_is_refused(home):
    from vidintel_pipeline.definitions import defs

    with pytest.raises(dg.DagsterUnknownPartitionError, match="acme__never-added"):
        defs.resolve_job_def("ingest_video").execute_in_process(
            instance=get_instance(), partition_key="acme__never-added"
        )


def _vidintel(*args, env_home: Path):
    env = dict(os.environ, VIDINTEL_HOME=str(env_home), DAGSTER_HOME=str(env_home / "dagster"))
    return subprocess.run([VIDINTEL, *args], capture_output=True, text=True, timeout=600, env=env)


def test_cli_errors_are_clear(tmp_path, home, demo_video):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    proc = _vidintel("ingest", str(bad), "--project", "acme", env_home=home)
    assert proc.returncode == 2 and "not ingested: notes.mp4: not a readable video" in proc.stderr
    assert not (home / "data").exists()  # nothing stored, no partition registered
    proc = _vidintel("ingest", str(demo_video[0]), "--project", "../evil", env_home=home)
    assert proc.returncode == 2 and "project id '../evil' is not allowed" in proc.stderr
    proc = _vidintel("show", "acme", "nothing-here", env_home=home)
    assert proc.returncode == 2 and "has not been ingested" in proc.stderr
    proc = _vidintel("plugins", "--json", env_home=home)
    listed = json.loads(proc.stdout)
    assert {p["plugin_name"] for p in listed["plugins"]} >= {"local_shots", "faster_whisper"} and listed["errors"] == []


def test_progress_carries_the_seeds_fields_and_ends_at_100(home, demo_video):
    """Every report has current_phase / phase_progress / providers_active / markers_detected as the seed
    shows them; every phase ends at 100; phases are AssetObservations in the instance; the CLI bar ends at 100 %."""
    import io

    from vidintel_pipeline.defs.progress import listening
    from vidintel_pipeline.runtime import in_process
    from vidintel_pipeline.runtime.instance import get_instance

    events: list[dict] = []
    with listening(events.append):
        in_process.ingest(str(demo_video[0]), "acme", "progress", quiet=True)
    assert all({"current_phase", "phase_progress"} <= set(e) for e in events)
    ended = {e["current_phase"] for e in events if e["phase_progress"] == 100.0}
    assert ended == {
        "initializing",
        "chunking",
        "analyzing_temporal",
        "transcribing_audio",
        "building_memory",
        "finalizing",
    }
    started = [e for e in events if e["current_phase"] == "analyzing_temporal" and e["phase_progress"] == 0.0]
    assert (
        started and isinstance(started[0]["providers_active"], list) and "local_shots" in started[0]["providers_active"]
    )
    done = [e for e in events if e["current_phase"] == "analyzing_temporal" and e["phase_progress"] == 100.0]
    assert isinstance(done[0]["markers_detected"], int) and done[0]["markers_detected"] > 5

    obs = get_instance().fetch_observations(dg.AssetKey("temporal_markers"), limit=50).records
    mine = [
        r.asset_observation for r in obs if r.asset_observation and r.asset_observation.partition == "acme__progress"
    ]
    phases = {(o.metadata["progress/current_phase"].value, o.metadata["progress/phase_progress"].value) for o in mine}
    assert ("analyzing_temporal", 100.0) in phases and ("analyzing_temporal", 0.0) in phases

    out = io.StringIO()
    bar = ProgressBar(stream=out)
    for e in events:
        bar(e)
    bar.close(True)
    assert out.getvalue().rstrip().endswith("100.0%  done")
