"""`vidintel ingest --submit`: runs go to the instance's queue, a real daemon starts them within its limits, the CLI
follows them to the end; the sensor does not queue a second run of a video whose submitted run is pending."""

from __future__ import annotations

import json
import os
import time

import dagster as dg

from vidintel_pipeline import cli
from vidintel_pipeline.runtime.instance import DAGSTER_YAML, get_instance


def test_submit_refuses_a_queue_no_daemon_serves_and_stores_nothing(home, tmp_path, capsys, tone_clip):
    clip = tone_clip(tmp_path / "lone.mp4", 1)
    assert cli.main(["ingest", str(clip), "--project", "q", "--submit"]) == 2
    assert "no Dagster daemon serves the run queue" in capsys.readouterr().err
    assert not (home / "data/ingest/projects/q").exists()  # refused before the source was stored
    assert cli.main(["ingest", str(clip), "--project", "q", "--no-wait"]) == 2
    assert "--no-wait goes with --submit" in capsys.readouterr().err


def test_submitted_runs_wait_in_the_queue_and_the_sensor_does_not_run_them_twice(
    distributed_script, home, tmp_path, capsys, tone_clip
):
    (home / "dagster").mkdir(parents=True)
    # one run at a time, so the second video's run is seen waiting in the queue
    (home / "dagster/dagster.yaml").write_text(DAGSTER_YAML.replace("max_concurrent_runs: 2", "max_concurrent_runs: 1"))
    clips = [tone_clip(tmp_path / f"sub{i}.mp4", 2 + i) for i in (1, 2)]
    small, large = (c.stat().st_size for c in clips)
    assert small < large
    # the threshold between the two: the shorter clip's steps run in its run's process, the longer one's each in a
    # process of its own (the multiprocess executor)
    between = f"{(small + large) / 2 / 1e6:.6f}"
    env = dict(
        os.environ, VIDINTEL_SENSOR_SETTLE_S="1", VIDINTEL_SENSOR_INTERVAL_S="3", VIDINTEL_IN_PROCESS_MAX_MB=between
    )
    cluster = distributed_script.Cluster(home, env)
    instance = get_instance()
    try:
        cluster.daemon(instance, "QUEUED_RUN_COORDINATOR")
        code = cli.main(["ingest", *map(str, clips), "--project", "q", "--submit", "--json"])
        report = json.loads(capsys.readouterr().out)
        assert code == 0, report
        assert [r["status"] for r in report["videos"]] == ["ok", "ok"], report
        runs = [instance.get_run_record_by_id(r["run_id"]) for r in report["videos"]]
        for rec in runs:
            assert rec.dagster_run.status == dg.DagsterRunStatus.SUCCESS
            assert instance.all_logs(rec.dagster_run.run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED)  # via the queue
            assert rec.dagster_run.tags["vidintel/project"] == "q"
            assert rec.dagster_run.tags["vidintel/submitted_by"] == "vidintel ingest"
            assert "vidintel/launcher" in rec.dagster_run.tags  # started by the instance's (routing) launcher
        how = []
        for rec, size in zip(runs, (small, large), strict=True):
            assert rec.dagster_run.tags["vidintel/source_bytes"] == str(size)
            messages = " ".join(e.message or "" for e in instance.all_logs(rec.dagster_run.run_id))
            workers = instance.all_logs(rec.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_WORKER_STARTING)
            how.append(("in process" if "Executing steps in process" in messages else "") + f" {len(workers)} workers")
        assert how == ["in process 0 workers", " 9 workers"], how
        first, second = sorted(runs, key=lambda r: r.start_time)
        assert first.end_time <= second.start_time  # the queue's limit of one run held the second back
        for vid, seconds in (("sub1", 3.0), ("sub2", 4.0)):
            assert abs(cli.load_memory("q", vid)["duration_s"] - seconds) < 0.1
        # the sensor ticked every 3 s while the runs were queued and going; it must not have queued its own, and
        # after they are done it finds the videos already ingested
        time.sleep(8)
        ingest_runs = instance.get_run_records(dg.RunsFilter(job_name="ingest_video"))
        assert sorted(r.dagster_run.run_id for r in ingest_runs) == sorted(r.dagster_run.run_id for r in runs)
    finally:
        cluster.stop_all()
