"""`vidintel ingest DIR | PATH...`: every file checked first, a bad one reported without stopping the others."""

from __future__ import annotations

import json
import shutil
import subprocess

from vidintel_pipeline import cli
from vidintel_pipeline.media.ffmpeg import ffmpeg_exe


def test_ingest_a_folder_reports_each_file_and_goes_on(home, tmp_path, capsys):
    folder = tmp_path / "drop"
    folder.mkdir()
    for i in (1, 2):
        subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
             f"testsrc2=s=64x36:r=25:d={i + 1}", "-c:v", "libx264", "-preset", "ultrafast",
             str(folder / f"clip{i}.mp4")],
            check=True,
        )  # fmt: skip
    (folder / "broken.mp4").write_bytes((folder / "clip1.mp4").read_bytes()[:4000])
    shutil.copy(folder / "clip1.mp4", folder / "Clip1.MOV")  # folds to the id clip1: would replace it
    (folder / "notes.txt").write_text("not a video")  # not a video extension: not picked up from a folder
    code = cli.main(["ingest", str(folder), "--project", "batch", "--json"])
    report = json.loads(capsys.readouterr().out)
    status = {r["file"].rsplit("/", 1)[1]: r["status"] for r in report["videos"]}
    # sorted by name, Clip1.MOV takes the id clip1 first; clip1.mp4 is refused rather than replacing it
    assert status == {"broken.mp4": "invalid", "Clip1.MOV": "ok", "clip1.mp4": "invalid", "clip2.mp4": "ok"}, report
    why = {r["file"].rsplit("/", 1)[1]: r.get("error", "") for r in report["videos"]}
    assert "not a readable video container" in why["broken.mp4"] and "same video id 'clip1'" in why["clip1.mp4"]
    assert code == 1  # not all ingested
    for vid, seconds in (("clip1", 2.0), ("clip2", 3.0)):
        assert abs(cli.load_memory("batch", vid)["duration_s"] - seconds) < 0.1
    assert (
        cli.main(["ingest", str(folder / "clip1.mp4"), str(folder / "clip2.mp4"), "--project", "b", "--video-id", "x"])
        == 2
    )
    assert "--video-id names one video" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["ingest", str(empty), "--project", "b"]) == 2


def test_workers_get_disjoint_cpu_shares():
    import os

    from vidintel_pipeline.runtime.batch import cpu_shares

    cpus = os.sched_getaffinity(0)
    for jobs in (1, 2, 3):
        shares = cpu_shares(jobs)
        assert len(shares) == jobs and set().union(*shares) == cpus
        if len(cpus) >= jobs:  # enough CPUs: no two workers share one
            assert sum(len(s) for s in shares) == len(cpus)


def test_register_adds_only_new_partitions_few_or_many():
    import dagster as dg

    from vidintel_pipeline.defs.partitions import VIDEOS
    from vidintel_pipeline.intake import register
    from vidintel_pipeline.storage.layout import VideoRef

    with dg.DagsterInstance.ephemeral() as instance:
        many = [VideoRef("p", f"v{i:02d}") for i in range(25)]  # more than 20: one listing of the known keys
        assert register(instance, many) == sorted(r.partition_key for r in many)
        assert register(instance, many) == []
        few = [VideoRef("p", "v03"), VideoRef("p", "new"), VideoRef("p", "new")]  # a lookup per key
        assert register(instance, few) == ["p__new"]
        assert register(instance, few) == []
        assert len(instance.get_dynamic_partitions(VIDEOS)) == 26
