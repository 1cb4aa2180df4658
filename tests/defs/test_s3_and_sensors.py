"""S3 storage, tenancy and the new-video sensor against a real S3 API server on loopback (moto)."""

import json
import logging
import os
import time

import dagster as dg
import pytest

from vidintel.resources import VidintelStorage
from vidintel_pipeline.defs import sensors
from vidintel_pipeline.runtime import in_process
from vidintel_pipeline.runtime.instance import get_instance
from vidintel_pipeline.storage.layout import InvalidIdError
from vidintel_pipeline.storage.local import LocalStore
from vidintel_pipeline.storage.s3 import S3Store
from vidintel_pipeline.storage.stores import StorageError, TenancyError

LOG = logging.getLogger("test")


def _store(s3, bucket="ingest", **kw) -> S3Store:
    return (
        VidintelStorage(multipart_threshold_mb=5, **kw).ingest() if bucket == "ingest" else VidintelStorage().output()
    )


def test_s3_store_roundtrip_multipart_and_streaming_download(s3, tmp_path):
    store = _store(s3)
    assert isinstance(store, S3Store) and store.bucket == s3["ingest"]
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    uri = store.put_file("projects/acme/videos/v/source/big.mp4", big)
    assert uri == f"s3://{s3['ingest']}/projects/acme/videos/v/source/big.mp4"
    info = store.head("projects/acme/videos/v/source/big.mp4")
    assert info.size == big.stat().st_size and "-" in info.etag  # a multipart upload's ETag is md5-of-parts "-N"
    assert s3["client"].list_multipart_uploads(Bucket=s3["ingest"]).get("Uploads", []) == []
    local = store.local_path("projects/acme/videos/v/source/big.mp4")
    assert local.read_bytes() == big.read_bytes()
    assert store.local_path("projects/acme/videos/v/source/big.mp4") == local  # cached while the ETag holds
    store.put_json("projects/acme/videos/v/metadata/x.json", {"a": 1})
    assert store.get_json("projects/acme/videos/v/metadata/x.json") == {"a": 1}
    assert sorted(store.list("projects/acme/")) == [
        "projects/acme/videos/v/metadata/x.json",
        "projects/acme/videos/v/source/big.mp4",
    ]
    with pytest.raises(StorageError, match="no object at s3://"):
        store.get_bytes("projects/acme/nothing.json")


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_tenancy_is_enforced_in_one_place(kind, s3, tmp_path):
    store = _store(s3) if kind == "s3" else LocalStore(tmp_path)
    store.put_bytes("projects/b/videos/v/source/secret.mp4", b"b's data")
    a = store.scoped("a")
    for bad in (
        "projects/b/videos/v/source/secret.mp4",
        "projects/a/../b/videos/v/source/secret.mp4",
        "projects/ab/x",
        "/projects/a/x",
        "projects/a/x\n",
        "incoming/b/x.mp4",
    ):
        with pytest.raises(InvalidIdError):
            a.get_bytes(bad)
        with pytest.raises(InvalidIdError):
            a.put_bytes(bad, b"overwrite")
    with pytest.raises(TenancyError):
        list(a.list_objects("projects/b/"))
    with pytest.raises(TenancyError):
        a.copy("projects/b/videos/v/source/secret.mp4", "projects/a/videos/v/source/stolen.mp4")
    assert store.get_bytes("projects/b/videos/v/source/secret.mp4") == b"b's data"
    assert list(store.list("projects/a/")) == []
    with pytest.raises(InvalidIdError):
        store.scoped("../b")


def _put(s3, key, body=b"\x00\x00\x00\x18ftypmp42 video bytes"):
    s3["client"].put_object(Bucket=s3["ingest"], Key=key, Body=body)


def test_scan_finds_new_and_changed_videos_once(s3, caplog):
    store = _store(s3)
    _put(s3, "projects/acme/videos/intro/source/intro.mp4")
    _put(s3, "projects/acme/videos/intro/source/notes.txt")
    _put(s3, "projects/acme/videos/bad..id/source/x.mp4")
    _put(s3, "projects/acme/videos/intro/chunks/chunk_00000.mp4")  # derived data is never a new video
    now = time.time() + 1
    with caplog.at_level(logging.INFO):
        found, cursor = sensors.scan(store, None, LOG, now=now, settle_s=0)
    assert [f.ref.partition_key for f in found] == ["acme__intro"]
    assert found[0].run_key.startswith("projects/acme/videos/intro/source/intro.mp4@")
    assert "notes.txt" in caplog.text and "not a video file" in caplog.text
    assert "hostile or invalid id" in caplog.text
    again, cursor2 = sensors.scan(store, cursor, LOG, now=now, settle_s=0)
    assert again == []  # second tick: no duplicates
    time.sleep(1.1)  # S3 timestamps have one-second resolution
    _put(s3, "projects/acme/videos/intro/source/intro.mp4", b"a new cut of the video")
    changed, _ = sensors.scan(store, cursor2, LOG, now=time.time() + 1, settle_s=0)
    assert [f.ref.partition_key for f in changed] == ["acme__intro"] and changed[0].run_key != found[0].run_key
    # an object younger than the settle time waits for a later tick
    _put(s3, "projects/acme/videos/fresh/source/fresh.mp4")
    young, c3 = sensors.scan(store, cursor2, LOG, now=time.time(), settle_s=60)
    assert "acme__fresh" not in [f.ref.partition_key for f in young]
    later, _ = sensors.scan(store, c3, LOG, now=time.time() + 61, settle_s=60)
    assert "acme__fresh" in [f.ref.partition_key for f in later]


def test_scan_paginates_past_1000_and_cursor_survives_restart(s3):
    store = _store(s3)
    for i in range(1200):
        _put(s3, f"projects/p{i % 3}/videos/v{i:04d}/source/v.mp4", b"x")
    now = time.time() + 1
    found, cursor = sensors.scan(store, None, LOG, now=now, settle_s=0, limit=5000)
    assert len(found) == 1200 and len({f.ref.partition_key for f in found}) == 1200
    restarted = json.loads(json.dumps(cursor))  # what the instance stores between daemon restarts
    assert sensors.scan(store, restarted, LOG, now=now, settle_s=0, limit=5000)[0] == []
    # the per-tick cap hands the rest to later ticks, each object exactly once
    seen, cur = [], None
    for _ in range(5):
        batch, cur = sensors.scan(store, cur, LOG, now=now, settle_s=0, limit=500)
        seen += [f.run_key for f in batch]
    assert len(seen) == 1200 == len(set(seen))


def _sensor_tick(instance, cursor=None):
    from vidintel_pipeline.definitions import defs

    sensor = defs.resolve_sensor_def("new_video_sensor")
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"storage": VidintelStorage()})
    return sensor(ctx)


def test_sensor_end_to_end_from_s3_drop_to_memory_in_output_bucket(s3, home, demo_video, monkeypatch):
    monkeypatch.setattr(sensors, "SETTLE_S", 0.0)
    instance = get_instance()
    s3["client"].upload_file(str(demo_video[0]), s3["ingest"], "incoming/acme/Launch Video.mp4")
    _put(s3, "incoming/acme/readme.txt", b"not a video")
    time.sleep(1.1)
    result = _sensor_tick(instance)
    keys = [k["Key"] for k in s3["client"].list_objects_v2(Bucket=s3["ingest"])["Contents"]]
    assert "projects/acme/videos/launch-video/source/Launch Video.mp4" in keys
    assert "incoming/acme/Launch Video.mp4" not in keys and "incoming/acme/readme.txt" in keys
    assert [r.partition_key for r in result.run_requests] == ["acme__launch-video"]
    assert result.run_requests[0].tags["vidintel/project"] == "acme"
    assert result.dynamic_partitions_requests[0].partition_keys == ["acme__launch-video"]
    assert _sensor_tick(instance, result.cursor).run_requests == []

    # what the daemon does with the result: add the partition, launch the run
    instance.add_dynamic_partitions("videos", ["acme__launch-video"])
    from vidintel_pipeline.definitions import defs

    req = result.run_requests[0]
    run = defs.resolve_job_def("ingest_video").execute_in_process(
        instance=instance,
        partition_key=req.partition_key,
        tags=req.tags,
        run_config={"resources": {"transcription": {"config": {"enabled": False}}}},
    )
    assert run.success
    out = s3["client"].get_object(Bucket=s3["output"], Key="projects/acme/memories/launch-video.json")
    memory = json.loads(out["Body"].read())
    assert memory["video_id"] == "launch-video" and any(m["label"] == "cut" for m in memory["markers"])
    ingest_keys = {k["Key"] for k in s3["client"].list_objects_v2(Bucket=s3["ingest"])["Contents"]}
    for folder in ("source", "chunks", "keyframes", "transcripts", "metadata"):
        assert any(k.startswith(f"projects/acme/videos/launch-video/{folder}/") for k in ingest_keys), folder
    assert memory["keyframes"][0]["uri"].startswith(f"s3://{s3['ingest']}/projects/acme/videos/launch-video/keyframes/")


def test_s3_outage_fails_clearly_and_a_retry_after_restart_succeeds(s3, home, demo_video):
    from moto.server import ThreadedMotoServer

    from vidintel_pipeline.definitions import defs

    instance = get_instance()
    s3["client"].upload_file(str(demo_video[0]), s3["ingest"], "projects/acme/videos/v1/source/v1.mp4")
    instance.add_dynamic_partitions("videos", ["acme__v1"])
    job = defs.resolve_job_def("ingest_video")
    cfg = {"resources": {"transcription": {"config": {"enabled": False}}}}
    # the first steps run, then the S3 server goes away in the middle of the run
    first = job.execute_in_process(
        instance=instance, partition_key="acme__v1", run_config=cfg, op_selection=["source_video", "video_chunks"]
    )
    assert first.success
    s3["server"]["server"].stop()
    try:
        failed = job.execute_in_process(
            instance=instance, partition_key="acme__v1", run_config=cfg, raise_on_error=False
        )
        assert not failed.success
        messages = " ".join(
            str(
                e.step_failure_data.error.cause.message
                if e.step_failure_data.error.cause
                else e.step_failure_data.error.message
            )
            for e in failed.all_events
            if e.is_step_failure
        )
        assert "S3 unreachable" in messages and s3["server"]["url"] in messages
    finally:
        s3["server"]["server"] = ThreadedMotoServer(ip_address="127.0.0.1", port=s3["server"]["port"], verbose=False)
        s3["server"]["server"].start()
    again = job.execute_in_process(instance=instance, partition_key="acme__v1", run_config=cfg)
    assert again.success
    assert s3["client"].list_multipart_uploads(Bucket=s3["ingest"]).get("Uploads", []) == []
    body = s3["client"].get_object(Bucket=s3["output"], Key="projects/acme/memories/v1.json")["Body"].read()
    assert json.loads(body)["video_id"] == "v1"


def test_local_store_drop_folder_and_late_uploads(home, monkeypatch):
    """The embedded default: files dropped into $VIDINTEL_HOME/data/ingest/incoming/{project}/ are picked up."""
    monkeypatch.setattr(sensors, "SETTLE_S", 0.0)
    store = VidintelStorage().ingest()
    assert isinstance(store, LocalStore)
    drop = store.root / "incoming" / "acme" / "Team Meeting.MOV"
    drop.parent.mkdir(parents=True)
    drop.write_bytes(b"video bytes")
    partial = store.root / "incoming" / "acme" / ".tmp-upload"  # an atomic writer's temporary file
    partial.write_bytes(b"half")
    result = _sensor_tick(get_instance())
    assert [r.partition_key for r in result.run_requests] == ["acme__team-meeting"]
    assert (store.root / "projects/acme/videos/team-meeting/source/Team Meeting.MOV").read_bytes() == b"video bytes"
    assert not drop.exists() and partial.exists()
    # a big upload that *started* before the watermark but finished after it is still found
    late = store.root / "projects/acme/videos/late/source/late.mp4"
    late.parent.mkdir(parents=True)
    late.write_bytes(b"late")
    since = json.loads(result.cursor)["since"]
    os.utime(late, (since - 600, since - 600))
    assert [r.partition_key for r in _sensor_tick(get_instance(), result.cursor).run_requests] == ["acme__late"]


def test_sensor_skips_videos_already_ingested_until_they_change(home, tmp_path, monkeypatch):
    """A video ingested with the CLI is in storage but done: a sensor (new, or with its cursor reset) leaves it."""
    from vidintel_pipeline.media.samples import Shot, render
    from vidintel_pipeline.runtime import in_process

    monkeypatch.setattr(sensors, "SETTLE_S", 0.0)
    clip = tmp_path / "done.mp4"
    render(clip, [Shot("testsrc", 1.0), Shot("gradient", 1.0)], size=(160, 90))
    in_process.ingest(
        str(clip), "acme", "done", quiet=True, resources_config={"transcription": {"config": {"enabled": False}}}
    )
    store = VidintelStorage().ingest()
    store.put_bytes("projects/acme/videos/fresh/source/fresh.mp4", b"x")
    result = _sensor_tick(get_instance())
    assert [r.partition_key for r in result.run_requests] == ["acme__fresh"]
    # the same video uploaded again, changed: its memory is older than the object now
    source = store.root / "projects/acme/videos/done/source/done.mp4"
    source.write_bytes(source.read_bytes() + b"\0")
    os.utime(source, None)
    assert [r.partition_key for r in _sensor_tick(get_instance(), result.cursor).run_requests] == ["acme__done"]


def test_nightly_rescan_requests_videos_without_memory(home, tmp_path):
    from vidintel_pipeline.definitions import defs

    store = VidintelStorage().ingest()
    store.put_bytes("projects/acme/videos/missed/source/missed.mp4", b"x")
    store.put_bytes("projects/acme/videos/notes/source/notes.txt", b"x")
    schedule = defs.resolve_schedule_def("nightly_rescan")
    ctx = dg.build_schedule_context(instance=get_instance(), resources={"storage": VidintelStorage()})
    reqs = [r for r in schedule(ctx) if isinstance(r, dg.RunRequest)]
    assert [r.partition_key for r in reqs] == ["acme__missed"]
    assert "acme__missed" in get_instance().get_dynamic_partitions("videos")
    # a video whose run has not finished (a backlog draining at 03:00) is not requested a second time
    store.put_bytes("projects/acme/videos/queued/source/queued.mp4", b"x")
    get_instance().add_run(
        dg.DagsterRun(
            job_name="ingest_video", status=dg.DagsterRunStatus.STARTED, tags={"dagster/partition": "acme__queued"}
        )
    )
    ctx = dg.build_schedule_context(instance=get_instance(), resources={"storage": VidintelStorage()})
    assert [r.partition_key for r in schedule(ctx) if isinstance(r, dg.RunRequest)] == ["acme__missed"]


def test_gpu_projects_take_the_gpu_job_unattended(home, monkeypatch):
    """VIDINTEL_GPU_PROJECTS: the sensor requests the GPU job for those projects, and the GPU twin of the nightly
    re-scan (not the CPU one) picks up their videos."""
    from vidintel_pipeline.definitions import defs

    monkeypatch.setenv("VIDINTEL_GPU_PROJECTS", "studio")
    store = VidintelStorage().ingest()
    for key in ("projects/studio/videos/a/source/a.mp4", "projects/acme/videos/b/source/b.mp4"):
        store.put_bytes(key, b"x")
        os.utime(store.root / key, (time.time() - 600, time.time() - 600))
    requests = _sensor_tick(get_instance()).run_requests
    jobs = {r.partition_key: (r.job_name, r.tags.get("vidintel/gpu_reason")) for r in requests}
    assert jobs == {
        "studio__a": ("ingest_video_gpu", "VIDINTEL_GPU_PROJECTS names studio"),
        "acme__b": ("ingest_video", None),
    }
    sched = {name: defs.resolve_schedule_def(name) for name in ("nightly_rescan", "nightly_rescan_gpu")}
    assert sched["nightly_rescan_gpu"].job_name == "ingest_video_gpu"
    picked = {}
    for name, s in sched.items():
        sctx = dg.build_schedule_context(instance=get_instance(), resources={"storage": VidintelStorage()})
        picked[name] = [r.partition_key for r in s(sctx) if isinstance(r, dg.RunRequest)]
    assert picked == {"nightly_rescan": ["acme__b"], "nightly_rescan_gpu": ["studio__a"]}


def test_cli_ingest_with_buckets_set(s3, home, demo_video):
    from vidintel_pipeline import cli

    info = in_process.ingest(
        str(demo_video[0]),
        "acme",
        "cli-video",
        quiet=True,
        resources_config={"transcription": {"config": {"enabled": False}}},
    )
    ingest = {k["Key"] for k in s3["client"].list_objects_v2(Bucket=s3["ingest"])["Contents"]}
    output = {k["Key"] for k in s3["client"].list_objects_v2(Bucket=s3["output"])["Contents"]}
    assert "projects/acme/videos/cli-video/source/demo.mp4" in ingest
    assert "projects/acme/memories/cli-video.json" in output and not any("/videos/" in k for k in output)
    assert cli.load_memory("acme", "cli-video")["video_id"] == "cli-video"
    assert not (home / "data").exists()  # nothing written to the local tree when buckets are set
    assert info["partition"] == "acme__cli-video"


def _add(config: dict):
    from vidintel_pipeline.definitions import defs

    return defs.resolve_job_def("add_video").execute_in_process(
        instance=get_instance(), run_config={"ops": {"store_video": {"config": config}}}, raise_on_error=False
    )


def test_add_video_from_the_launchpad_local_and_s3(s3, home, demo_video, monkeypatch):
    """The add_video job stores and registers the video; the sensor then requests its ingest. A bad source fails
    the job with a clear reason and stores nothing."""
    result = _add({"source": str(demo_video[0]), "project_id": "ui", "video_id": "added"})
    assert result.success
    assert "ui__added" in get_instance().get_dynamic_partitions("videos")
    keys = {k["Key"] for k in s3["client"].list_objects_v2(Bucket=s3["ingest"])["Contents"]}
    assert "projects/ui/videos/added/source/demo.mp4" in keys
    monkeypatch.setattr(sensors, "SETTLE_S", 0)  # just written: the sensor requests the ingest at once
    assert [r.partition_key for r in _sensor_tick(get_instance()).run_requests] == ["ui__added"]
    s3["client"].upload_file(str(demo_video[0]), s3["ingest"], "uploads/from-camera.mp4")
    assert _add({"source": f"s3://{s3['ingest']}/uploads/from-camera.mp4", "project_id": "ui"}).success
    assert "ui__from-camera" in get_instance().get_dynamic_partitions("videos")

    bad = _add({"source": "/nowhere/clip.mp4", "project_id": "ui", "video_id": "ghost"})
    assert not bad.success
    failure = next(e for e in bad.all_events if e.is_step_failure).step_failure_data.error
    assert "video not added: /nowhere/clip.mp4: no such file" in failure.message
    assert "ui__ghost" not in get_instance().get_dynamic_partitions("videos")
    missing = _add({"source": f"s3://{s3['ingest']}/uploads/nope.mp4", "project_id": "ui"})
    assert not missing.success


def test_a_partition_added_by_hand_without_a_video_says_how_to_add_one(home):
    from vidintel_pipeline.definitions import defs

    get_instance().add_dynamic_partitions("videos", ["ui__ghost"])
    result = defs.resolve_job_def("ingest_video").execute_in_process(
        instance=get_instance(), partition_key="ui__ghost", raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    assert "No video under" in failure.message and "add_video job" in failure.message
