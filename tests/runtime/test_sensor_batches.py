"""Small videos dropped together go through a real daemon in ``ingest_batch`` runs: each video is still an
``ingest_video`` run of its own, with its own materializations; a broken one fails its own run, the batch goes on
and then fails naming it, and the sensor queues nothing twice."""

from __future__ import annotations

import os
import time

import dagster as dg

from vidintel_pipeline.runtime.instance import DAGSTER_YAML, get_instance


def test_small_cpu_videos_are_grouped_and_the_rest_run_alone(monkeypatch):
    from vidintel_pipeline.defs.sensors import Found, requests_for
    from vidintel_pipeline.storage.layout import VideoRef
    from vidintel_pipeline.storage.stores import ObjectInfo

    monkeypatch.setenv("VIDINTEL_GPU_PROJECTS", "studio")
    monkeypatch.delenv("VIDINTEL_IN_PROCESS_MAX_MB", raising=False)

    def found(project: str, video: str, size: int) -> Found:
        return Found(
            VideoRef(project, video), ObjectInfo(f"projects/{project}/videos/{video}/source/x.mp4", size, "e", 0)
        )

    small = [found("acme", f"s{i}", 1000 + i) for i in range(5)]
    others = [found("acme", "big", 900_000_000), found("studio", "g", 10)]  # too large; a GPU project
    runs, keys = requests_for([*small, *others], batch=2)
    batches = [r for r in runs if r.job_name == "ingest_batch"]
    assert [r.run_config["ops"]["ingest_videos"]["config"]["partition_keys"] for r in batches] == [
        ["acme__s0", "acme__s1"],
        ["acme__s2", "acme__s3"],
    ]  # and acme__s4, left alone, a run of its own

    assert all(r.tags["vidintel/project"] == "acme" and r.partition_key is None for r in batches)
    assert sorted((r.partition_key, r.job_name) for r in runs if r not in batches) == [
        ("acme__big", "ingest_video"),
        ("acme__s4", "ingest_video"),
        ("studio__g", "ingest_video_gpu"),
    ]
    mixed, _ = requests_for([found("a", "x", 1), found("b", "y", 1), found("a", "z", 1)], batch=8)
    assert sorted(r.tags.get("vidintel/project", "") + ":" + r.job_name for r in mixed) == [
        "a:ingest_batch",
        "b:ingest_video",
    ]  # a batch holds one project's videos
    assert sorted(keys) == sorted(f.ref.partition_key for f in [*small, *others])
    again, _ = requests_for([*small, *others], batch=2)
    assert [r.run_key for r in again] == [r.run_key for r in runs]  # the same objects: the same run keys
    assert all(r.job_name != "ingest_batch" for r in requests_for(small[:1] + others, batch=8)[0])  # one: alone
    assert all(r.job_name == "ingest_video" for r in requests_for(small, batch=1)[0])  # batching off


def test_a_drop_of_small_videos_goes_in_batches_each_video_its_own_run(distributed_script, home, tmp_path, tone_clip):
    (home / "dagster").mkdir(parents=True)
    (home / "dagster/dagster.yaml").write_text(DAGSTER_YAML)
    made = [tone_clip(tmp_path / f"b{i}.mp4", 1 + i % 2) for i in range(4)]
    (tmp_path / "broken.mp4").write_bytes(made[1].read_bytes()[:3000])  # cut short: no readable container
    drop = home / "data/ingest/incoming/bat"
    drop.mkdir(parents=True)
    for f in [*made, tmp_path / "broken.mp4"]:
        f.replace(drop / f.name)
    env = dict(os.environ, VIDINTEL_SENSOR_SETTLE_S="1", VIDINTEL_SENSOR_INTERVAL_S="3", VIDINTEL_SENSOR_BATCH="3")
    cluster = distributed_script.Cluster(home, env)
    instance = get_instance()
    try:
        cluster.daemon(instance)
        deadline = time.time() + 300
        while True:
            batches = instance.get_run_records(dg.RunsFilter(job_name="ingest_batch"))
            if len(batches) == 2 and all(b.dagster_run.is_finished for b in batches):
                break
            assert time.time() < deadline, (home / "daemon.log").read_text()[-3000:]
            time.sleep(2)
        keys = {"bat__b0", "bat__b1", "bat__b2", "bat__b3", "bat__broken"}
        parts = [b.dagster_run.run_config["ops"]["ingest_videos"]["config"]["partition_keys"] for b in batches]
        assert sorted(map(len, parts)) == [2, 3] and set().union(*map(set, parts)) == keys  # 3 to a run
        status = {b.dagster_run.run_id: b.dagster_run.status for b in batches}
        failed = [b for b in batches if b.dagster_run.status == dg.DagsterRunStatus.FAILURE]
        assert len(failed) == 1, status  # the batch with the broken video, after running the others
        failure = instance.all_logs(failed[0].dagster_run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        why = failure[0].dagster_event.step_failure_data.user_failure_data.description
        assert "bat__broken:" in why and "Cannot use" in why, why
        videos = {r.dagster_run.tags["vidintel/video"]: r.dagster_run for r in
                  instance.get_run_records(dg.RunsFilter(job_name="ingest_video"))}  # fmt: skip
        assert set(videos) == {"b0", "b1", "b2", "b3", "broken"}  # each video a run of its own, within its batch
        assert all(run.tags["vidintel/batch"] in status for run in videos.values())
        assert videos["broken"].status == dg.DagsterRunStatus.FAILURE
        for vid in ("b0", "b1", "b2", "b3"):
            assert videos[vid].status == dg.DagsterRunStatus.SUCCESS
            mat = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("memory"), asset_partitions=[f"bat__{vid}"]), limit=1
            ).records[0]
            assert mat.run_id == videos[vid].run_id  # the video's own run materialized its memory
            assert "cost/video_total_usd" in mat.asset_materialization.metadata  # per video, in its own materialization
        # the sensor ticked every 3 s all along: it queued no second run of any of them
        time.sleep(8)
        assert len(instance.get_run_records(dg.RunsFilter(job_name="ingest_batch"))) == 2
        assert len(instance.get_run_records(dg.RunsFilter(job_name="ingest_video"))) == 5
    finally:
        cluster.stop_all()


def test_a_batch_run_again_skips_what_an_earlier_attempt_ingested(home, tmp_path, tone_clip):
    from vidintel.resources import VidintelStorage
    from vidintel_pipeline.defs.batch_job import ingest_batch_job
    from vidintel_pipeline.intake import register, store_source
    from vidintel_pipeline.storage.layout import VideoRef

    instance = get_instance()
    ref = VideoRef("again", "clip")
    store_source(VidintelStorage().for_video(ref)[0], ref, tone_clip(tmp_path / "clip.mp4", 1))
    register(instance, [ref])
    config = {"ops": {"ingest_videos": {"config": {"partition_keys": [ref.partition_key]}}}}
    first = ingest_batch_job.execute_in_process(instance=instance, run_config=config)
    assert first.success
    [inner] = instance.get_run_records(dg.RunsFilter(job_name="ingest_video"))
    assert inner.dagster_run.tags["vidintel/batch"] == first.run_id and inner.dagster_run.status.value == "SUCCESS"
    # a re-execution of that batch (what the UI's re-execute, or run retries, would start)
    again = ingest_batch_job.execute_in_process(
        instance=instance,
        run_config=config,
        tags={"dagster/root_run_id": first.run_id, "dagster/parent_run_id": first.run_id},
    )
    assert again.success
    assert len(instance.get_run_records(dg.RunsFilter(job_name="ingest_video"))) == 1  # not ingested twice
    said = " ".join(e.message or "" for e in instance.all_logs(again.run_id))
    assert f"ingested by run {inner.dagster_run.run_id} already" in said
    fresh = ingest_batch_job.execute_in_process(instance=instance, run_config=config)  # a new batch: runs it again
    assert fresh.success and len(instance.get_run_records(dg.RunsFilter(job_name="ingest_video"))) == 2
