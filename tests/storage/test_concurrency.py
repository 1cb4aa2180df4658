"""Concurrent work on the same things: one video ingested twice at once, a sensor tick during an ingest, a daemon
run meeting a CLI ingest, and many search-index updates of two projects at once.

All real: ``vidintel ingest`` subprocesses racing on one SQLite instance and one store, the real sensor,
a job run by ``dg.execute_job`` under the same locking executor the ingest jobs use, and forked processes
updating the indexes with :func:`vidintel_pipeline.outputs.search.sync`, as the ``search_index`` asset does.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from test_store_safety import Lines, _sensor_tick

from vidintel_pipeline.defs import sensors
from vidintel_pipeline.media.ffmpeg import run_ffmpeg
from vidintel_pipeline.outputs import search
from vidintel_pipeline.runtime.instance import get_instance
from vidintel_pipeline.storage.layout import VideoRef
from vidintel_pipeline.storage.local import LocalStore
from vidintel_pipeline.storage.locks import held, holder, index_lock_name, video_lock_name

VIDINTEL = str(Path(sys.executable).with_name("vidintel"))
PER_VIDEO = [
    "source_video",
    "video_chunks",
    "audio",
    "keyframes",
    "temporal_markers",
    "transcript",
    "derived_markers",
    "memory",
    "exports",
    "search_index",
]


def clip(path: Path, seconds: float) -> Path:
    """testsrc2 with a tone: long enough that an ingest holds its lock for seconds, not milliseconds."""
    run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=s=320x180:r=25:d={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=f=440:d={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        ],
        what=f"render {path.name}",
    )
    return path


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def ingest_cmd(path: Path, project: str, video: str) -> list[str]:
    return [VIDINTEL, "ingest", str(path), "--project", project, "--video-id", video, "--quiet", "--json"]


def materialized_by(instance, partition: str) -> dict[str, set[str]]:
    """Asset -> the run ids that ever materialized it for ``partition``."""
    out = {}
    for name in PER_VIDEO:
        recs = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(name), asset_partitions=[partition]), limit=100
        ).records
        out[name] = {r.run_id for r in recs}
    return out


# --------------------------------------------------------------------------------------------------
# one video, two ingests
# --------------------------------------------------------------------------------------------------


def test_two_cli_ingests_of_one_video_at_once_one_wins_and_every_output_is_from_its_run(home, tmp_path):
    instance = get_instance()  # the SQLite schema exists before the two processes race
    files = {"a": clip(tmp_path / "a.mp4", 12.0), "b": clip(tmp_path / "b.mp4", 16.0)}  # same video id, different files
    # deterministic: the second ingest starts while the first holds the video's lock (here the test holds it as
    # an ingest would); started together, a fast first ingest can finish before the second reaches the lock
    ref = VideoRef("acme", "v")
    with held(video_lock_name(ref), "vidintel ingest"):
        lost_p = subprocess.run(ingest_cmd(files["b"], "acme", "v"), capture_output=True, text=True, timeout=600)
    assert lost_p.returncode == 2, lost_p.stderr[-800:]
    assert f"acme/v is already being ingested by pid {os.getpid()} (vidintel ingest, since " in lost_p.stderr
    assert not (home / "data/ingest/projects/acme/videos/v/source").exists()  # refused before touching storage
    won_p = subprocess.run(ingest_cmd(files["a"], "acme", "v"), capture_output=True, text=True, timeout=600)
    assert won_p.returncode == 0, won_p.stderr[-800:]
    won = "a"
    run_id = json.loads(won_p.stdout)["run_id"]

    # one run, and every per-video output is from it and from the winner's file
    assert [r.run_id for r in instance.get_runs(dg.RunsFilter(tags={"dagster/partition": "acme__v"}))] == [run_id]
    assert materialized_by(instance, "acme__v") == {name: {run_id} for name in PER_VIDEO}
    video = home / "data/ingest/projects/acme/videos/v"
    assert sorted(p.name for p in (video / "source").iterdir()) == [f"{won}.mp4"]
    probe = json.loads((video / "metadata/probe.json").read_text())
    assert probe["key"] == f"projects/acme/videos/v/source/{won}.mp4" and probe["sha256"] == sha(files[won])
    manifest = json.loads((video / "chunks/manifest.json").read_text())
    assert manifest["source_key"] == probe["key"]
    memory = json.loads((home / "data/output/projects/acme/memories/v.json").read_text())
    assert memory["source"]["key"] == probe["key"] and memory["duration_s"] == pytest.approx(probe["duration_s"])
    assert abs(memory["duration_s"] - {"a": 12.0, "b": 16.0}[won]) < 0.2
    assert holder(video_lock_name(VideoRef("acme", "v"))) is None  # released when the winner finished


def test_the_sensor_leaves_a_video_being_ingested_by_the_cli_for_a_later_tick(home, tmp_path, monkeypatch):
    monkeypatch.setattr(sensors, "SETTLE_S", 0.0)
    instance = get_instance()
    f = clip(tmp_path / "talk.mp4", 12.0)
    proc = subprocess.Popen(ingest_cmd(f, "acme", "talk"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ref = VideoRef("acme", "talk")
    stored = home / "data/ingest/projects/acme/videos/talk/source/talk.mp4"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (holder(video_lock_name(ref)) and stored.exists()):
        time.sleep(0.05)
    assert proc.poll() is None, "the ingest finished before the sensor could tick: nothing was tested"
    during = Lines()
    first = _sensor_tick(instance, log=during)  # the CLI's source is there, settled (settle 0), its memory is not
    assert "acme__talk" not in [r.partition_key for r in first.run_requests]
    assert f"acme__talk is being ingested by pid {proc.pid} (vidintel ingest" in during.text
    assert proc.wait(600) == 0, proc.stderr.read()[-800:]
    after = Lines()
    second = _sensor_tick(instance, first.cursor, log=after)
    assert second.run_requests == []  # judged again now: done by the CLI, not run a second time
    assert "1 video(s) already ingested" in after.text
    assert len(instance.get_runs(dg.RunsFilter(tags={"dagster/partition": "acme__talk"}))) == 1


# --------------------------------------------------------------------------------------------------
# runs the daemon launches hold the same lock, in their run worker
# --------------------------------------------------------------------------------------------------


def test_a_launched_run_waits_for_a_cli_ingest_and_a_cli_fails_fast_on_a_running_one(home, tmp_path):
    from vidintel_pipeline.definitions import defs

    instance = get_instance()
    job = str(Path(__file__).parent / "lock_job.py")

    def launch(partition: str, log: Path, sleep_s: float) -> subprocess.Popen:
        """A run worker in its own process, as the daemon launches one."""
        return subprocess.Popen(
            [sys.executable, job, partition, str(log), str(sleep_s)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def outcome(proc: subprocess.Popen) -> dict:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-1500:]
        return json.loads(out.strip().splitlines()[-1])

    # 1. a CLI ingest holds acme/v: a run of acme/v waits; a run of acme/w does not
    v_log, w_log = tmp_path / "v.log", tmp_path / "w.log"
    with held(video_lock_name(VideoRef("acme", "v")), "vidintel ingest"):
        pv, pw = launch("acme__v", v_log, 0.1), launch("acme__w", w_log, 0.1)
        w = outcome(pw)
        assert w["success"] and w_log.exists()  # w ran to the end meanwhile ...
        assert not v_log.exists() and pv.poll() is None  # ... while v's step has not started
        released = time.time()
    v = outcome(pv)
    assert v["success"] and float(v_log.read_text().split()[1]) >= released
    waited = [e.user_message for e in instance.all_logs(v["run_id"]) if "is being ingested by" in e.user_message]
    assert waited and f"acme/v is being ingested by pid {os.getpid()} (vidintel ingest" in waited[0]

    # 2. a run holds acme/x: `vidintel ingest` of acme/x fails fast, naming the run and its worker
    x_log = tmp_path / "x.log"
    px = launch("acme__x", x_log, 15.0)
    deadline = time.time() + 120
    while time.time() < deadline and not x_log.exists() and px.poll() is None:
        time.sleep(0.05)
    t0 = time.time()
    res = subprocess.run(
        ingest_cmd(clip(tmp_path / "x.mp4", 2.0), "acme", "x"), capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2 and f"acme/x is already being ingested by pid {px.pid} (run " in res.stderr, res.stderr[
        -800:
    ]
    assert px.poll() is None and time.time() - t0 < 14  # refused while the run was still going, not after it
    x = outcome(px)
    assert x["success"] and f"(run {x['run_id']}, since" in res.stderr
    assert not (home / "data/ingest/projects/acme/videos/x").exists()  # the refused CLI touched nothing

    # the ingest jobs run under the same wrapper
    for name in ("ingest_video", "ingest_video_gpu"):
        assert defs.resolve_job_def(name).executor_def.description.endswith("(vidintel_pipeline.storage.locks)")


def test_the_embedded_instance_queues_one_run_per_video(tmp_path):
    from dagster._core.instance.config import dagster_instance_config

    from vidintel_pipeline.runtime.instance import DAGSTER_YAML

    (tmp_path / "dagster.yaml").write_text(DAGSTER_YAML)
    cfg, _ = dagster_instance_config(str(tmp_path))
    limits = cfg["run_queue"]["tag_concurrency_limits"]
    assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits


# --------------------------------------------------------------------------------------------------
# search indexes: many updates of two projects at once
# --------------------------------------------------------------------------------------------------


def _memory(project: str, i: int) -> dict:
    return {
        "project_id": project,
        "video_id": f"v{i:02d}",
        "duration_s": 10.0,
        "markers": [
            {
                "type": "custom_prompt",
                "start_s": float(k),
                "end_s": float(k),
                "label": f"tok{project}x{i:02d}k{k}",
                "confidence": 1.0,
                "plugin": "test",
            }
            for k in range(3)
        ],
    }


def _update(root: str, project: str, i: int, barrier) -> None:
    """One run's search_index step: its memory is written, then the project's index is brought up to date."""
    out = LocalStore(root).scoped(project)
    barrier.wait(60)  # every worker of the round at once: one's memory lands while another's sync is under way
    out.put_json(f"projects/{project}/memories/v{i:02d}.json", _memory(project, i))
    search.sync(out, project, None)


def check_index(memories: Path, project: str, other: str, n: int) -> None:
    """The index is a sound SQLite file holding exactly the ``n`` videos written so far, all of their entries."""
    db = sqlite3.connect(memories / "index.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.execute(
            "INSERT INTO entries_fts(entries_fts) VALUES ('integrity-check')"
        )  # raises if the FTS index is corrupt
        assert sorted(v for (v,) in db.execute("SELECT video_id FROM videos")) == [f"v{i:02d}" for i in range(n)]
        assert db.execute("SELECT count(*) FROM entries").fetchone() == (3 * n,)
        for i in range(n):  # each video's words are found, and only that project's
            hits = db.execute(
                "SELECT count(*) FROM entries_fts WHERE entries_fts MATCH ?", (f"tok{project}x{i:02d}k1",)
            ).fetchone()
            assert hits == (1,), (project, i)
        assert db.execute(
            "SELECT count(*) FROM entries_fts WHERE entries_fts MATCH ?", (f"tok{other}x00k1",)
        ).fetchone() == (0,)
    finally:
        db.close()


def test_concurrent_index_updates_of_two_projects_lose_nothing_and_corrupt_nothing(home):
    ctx = multiprocessing.get_context("fork")  # the workers share this process's imports: starting one is cheap
    root = str(home / "data/output")
    projects, per_round, rounds = ("alpha", "beta"), 6, 5
    for r in range(rounds):
        barrier = ctx.Barrier(per_round * len(projects))
        procs = [
            ctx.Process(target=_update, args=(root, p, r * per_round + i, barrier))
            for i in range(per_round)
            for p in projects
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(180)
        assert [p.exitcode for p in procs] == [0] * len(procs)
        # after every round, not only the last: a later round's syncs would put a lost video back
        for p in projects:
            check_index(Path(root, "projects", p, "memories"), p, projects[1 - projects.index(p)], (r + 1) * per_round)
    for p in projects:
        memories = Path(root, "projects", p, "memories")
        assert not [f.name for f in memories.iterdir() if f.name.startswith(".tmp-")]
        assert holder(index_lock_name(p)) is None
