"""`make distributed` as a test: Redis on loopback, two named Celery workers, the daemon; one video's GPU ingest runs
its steps on the workers, gpu_analysis alone on the gpu one, with the same results as on one machine, even though the
process running gpu_analysis is killed mid-step."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("dagster_celery", reason="the distributed extra: make install")
pytest.importorskip("torch", reason="the gpu extra: gpu_analysis runs its torch plugins")
if not shutil.which("redis-server"):
    pytest.skip("no redis-server on PATH: `make distributed` installs it as root", allow_module_level=True)


def test_a_gpu_ingest_runs_on_celery_workers_and_survives_a_killed_gpu_step(
    distributed_script, tmp_path, monkeypatch, capsys
):
    script = distributed_script
    # the script points VIDINTEL_HOME and DAGSTER_HOME at the cluster's home: set here, they are restored after
    monkeypatch.setenv("VIDINTEL_HOME", str(tmp_path / "cluster"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "cluster" / "dagster"))
    argv = ["--home", str(tmp_path / "cluster"), "--timeout", "600", "--compare", "--kill-step", "gpu_analysis"]
    assert script.main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["run_status"] == "SUCCESS", result
    steps = result["steps"]
    # every step of both runs (the GPU job's, then the merge run gpu_merge_sensor requested) ran on a worker
    assert {"source_video", "visual_analysis", "transcript", "gpu_analysis", "memory", "exports"} <= set(steps)
    assert steps["gpu_analysis"].startswith("vidintel-gpu@")
    assert all(w.startswith("vidintel-cpu@") for s, w in steps.items() if s != "gpu_analysis"), steps
    assert [r["job"] for r in result["runs"]] == ["ingest_video_gpu", "ingest_video"]
    # the pool process running gpu_analysis was SIGKILLed; the broker handed the task back and the step ran again
    killed = result["killed"]
    assert killed["step"] == "gpu_analysis" and len(killed["pids"]) == 1 and killed["starts"] == 2, killed
    log = (tmp_path / "cluster" / "gpu-worker.log").read_text()
    assert f"pid:{killed['pids'][0]} exited with 'signal 9 (SIGKILL)'" in log
    # and nothing was lost: the same markers, words and speakers as the single-machine ingest
    assert result["equal_to_single_machine"] is True
    # everything it started is stopped: no worker or broker left
    left = subprocess.run(["pgrep", "-f", str(tmp_path / "cluster")], capture_output=True, text=True).stdout.split()
    assert not left, left
