"""`make distributed`: a real Celery cluster on this machine runs one video's ingest, step by step on named workers.

It starts Redis on loopback (Debian's ``redis-server``) as the broker and result backend, two dagster-celery
workers (``cpu@vidintel`` on the default ``dagster`` queue, ``gpu@vidintel`` on ``gpu``), and the Dagster daemon
with the queued run coordinator, on a temporary instance with ``VIDINTEL_EXECUTOR=celery``. A video dropped into
``incoming/dist/`` is picked up by ``new_video_sensor``; ``VIDINTEL_GPU_PROJECTS=dist`` makes that the GPU job,
whose ``gpu_analysis`` step goes to the ``gpu`` queue; ``gpu_merge_sensor`` then builds memory, exports and the
search index, on the CPU worker. It prints one JSON line::

    {"run_status": "SUCCESS", "steps": {"<step key>": "<worker name>", ...}, "runs": [...], ...}

and stops everything it started. ``--compare`` also ingests the same video in-process (the single-machine path)
and reports whether the two memories hold the same markers and words. ``--kill-step gpu_analysis`` SIGKILLs the
gpu worker's pool process two seconds into that step (as the OOM killer would): the worker reports the lost
task, the broker hands the message back (``task_reject_on_worker_lost`` with late acks), the step runs again, and
``killed.starts`` in the JSON line counts its two starts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROJECT = "dist"
WORKERS = {"vidintel-cpu": ("dagster", 2), "vidintel-gpu": ("gpu", 1)}  # name (celery adds @host): queue, processes


# a task is acknowledged when it finishes, not when a worker takes it, so a step whose worker dies is not lost: Redis
# hands it to another worker after the broker's visibility timeout (the run's executor sets the same, executors.py)
RELIABLE = {"task_acks_late": True, "task_reject_on_worker_lost": True}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f} s")


class Cluster:
    """The processes started, each in its own session, stopped together."""

    def __init__(self, home: Path, env: dict[str, str]):
        self.home, self.env, self.procs = home, env, {}

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.home / f"{name}.log", "w")
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = proc
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)

    def worker(self, proc: str, name: str, config: Path, queue: str, concurrency: int) -> subprocess.Popen:
        """A dagster-celery worker ``name`` (celery adds @host) on ``queue``, started as process ``proc``."""
        return self.start(
            proc,
            [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-n", name, "-y", str(config)]
            + ["-q", queue]
            + ["--", f"--concurrency={concurrency}", "--without-mingle", "--without-gossip"],
        )

    def redis(self) -> str:
        """Redis on a free loopback port, nothing persisted; its URL, once it listens."""
        port = free_port()
        self.start(
            "redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        )
        wait_port(port)
        return f"redis://127.0.0.1:{port}/0"

    def daemon(self, instance: Any, wait_for: str = "SENSOR", timeout_s: float = 120) -> None:
        """The Dagster daemon on the repository's workspace, once its ``wait_for`` daemon reports healthy."""
        self.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")])
        deadline = time.time() + timeout_s
        while not instance.get_daemon_statuses([wait_for])[wait_for].healthy:
            if time.time() > deadline:
                raise SystemExit(
                    f"the daemon did not start: {self.home / 'daemon.log'}:\n"
                    + (self.home / "daemon.log").read_text()[-3000:]
                )
            time.sleep(1)


def celery_config(home: Path, broker: str) -> Path:
    """The workers' config file: Redis as broker and result backend, late acks (see RELIABLE)."""
    config = home / "celery.yaml"
    config.write_text(
        json.dumps({"execution": {"config": {"broker": broker, "backend": broker, "config_source": RELIABLE}}})
    )
    return config


def _proc(pid: int) -> tuple[int, int, bytes]:
    """(parent pid, process group, command line) of a live process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[2]), Path(f"/proc/{pid}/cmdline").read_bytes()


def pool_processes(session: int) -> list[int]:
    """The Celery pool processes of the worker started in process group ``session``: forked from the worker (same
    command line as their parent, no exec), unlike the worker itself or the ffmpeg a step runs."""
    procs = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                procs[int(d.name)] = _proc(int(d.name))
            except (OSError, ValueError):
                continue  # gone meanwhile
    ours = {pid: p for pid, p in procs.items() if p[1] == session}
    return sorted(
        pid
        for pid, (ppid, _, cmd) in ours.items()
        if ppid in ours and ours[ppid][2] == cmd and (ours[ppid][0] not in ours or ours[ours[ppid][0]][2] != cmd)
    )


def kill_step(cluster: Cluster, worker: str, instance: Any, step: str, timeout_s: float) -> dict[str, Any]:
    """Once ``step`` has started on ``worker``, SIGKILL the pool process running it (as the kernel's OOM killer
    would); what was killed."""
    import dagster as dg

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        for r in instance.get_runs(dg.RunsFilter(tags={"vidintel/project": PROJECT})):
            if instance.all_logs(r.run_id, of_type=dg.DagsterEventType.STEP_START) and any(
                e.step_key == step for e in instance.all_logs(r.run_id, of_type=dg.DagsterEventType.STEP_START)
            ):
                time.sleep(2)  # well into the step
                pids = pool_processes(cluster.procs[worker].pid)
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                return {"step": step, "worker": worker, "pids": pids, "run_id": r.run_id}
        time.sleep(0.5)
    raise SystemExit(f"{step} did not start within {timeout_s:.0f} s")


def step_starts(instance: Any, run_id: str) -> dict[str, int]:
    """How many times each step of the run started (more than once: it was run again)."""
    import dagster as dg

    out: dict[str, int] = {}
    for rec in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START):
        if rec.dagster_event and rec.dagster_event.step_key:
            out[rec.dagster_event.step_key] = out.get(rec.dagster_event.step_key, 0) + 1
    return out


def sample_video(out: Path) -> Path:
    from vidintel_pipeline.media.samples import Shot, render

    shots = [Shot("testsrc", 3.0), Shot("life", 3.0), Shot("gradient", 3.0, "dissolve", 1.0)]
    render(out, shots, speech=(("speech_a", 0.3),))
    return out


def steps_by_worker(instance: Any, run_id: str) -> dict[str, str]:
    """step key -> the Celery worker that ran it (dagster-celery's "Executing steps ... in celery worker" events)."""
    import dagster as dg

    out = {}
    for rec in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        ev = rec.dagster_event
        meta = ev.engine_event_data.metadata if ev and ev.engine_event_data else {}
        if "Celery worker" in meta and ev.step_key:
            out[ev.step_key] = meta["Celery worker"].value
    return out


def wait_runs(instance: Any, timeout_s: float) -> list[Any]:
    """The GPU job's run and the merge run gpu_merge_sensor requests after it, once both are finished."""
    import dagster as dg

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        runs = instance.get_runs(dg.RunsFilter(tags={"vidintel/project": PROJECT}))
        done = [r for r in runs if r.is_finished]
        failed = [r for r in done if r.status != dg.DagsterRunStatus.SUCCESS]
        merged = [r for r in done if r.tags.get("vidintel/after") == "gpu_analysis"]
        if failed or merged:
            return list(reversed(runs))  # oldest first
        time.sleep(1)
    raise SystemExit(f"no finished ingest after {timeout_s:.0f} s: see the logs in the cluster's home")


def memory_summary(home: Path) -> dict[str, Any]:
    doc = json.loads((home / f"data/output/projects/{PROJECT}/memories/clip.json").read_text())
    return {
        "markers": sorted(
            (m["type"], m["label"], round(m["start_s"], 2), round(m["end_s"], 2)) for m in doc["markers"]
        ),
        "words": [w["word"] for s in doc["transcript"]["segments"] for w in s["words"]],
        "speakers": sorted({s.get("speaker") for s in doc["transcript"]["segments"]} - {None}),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server is not on PATH: `make distributed` installs Debian's redis-server as root")
    home = Path(args.home or tempfile.mkdtemp(prefix="vidintel-distributed-"))
    env = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # dagster-celery runs `celery` from PATH
        VIDINTEL_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        VIDINTEL_EXECUTOR="celery",
        VIDINTEL_GPU_PROJECTS=PROJECT,
        VIDINTEL_SENSOR_SETTLE_S="1",
        VIDINTEL_SENSOR_INTERVAL_S="3",
    )
    os.environ.update({k: env[k] for k in ("VIDINTEL_HOME", "DAGSTER_HOME")})
    from vidintel_pipeline.runtime.instance import ensure_instance_home, get_instance

    ensure_instance_home()
    # the instance's SQLite schema made here, before the workers and the daemon open it at once: created by several
    # processes together, its schedule storage once got two alembic heads, and none of them could load the code
    instance = get_instance()
    video = Path(args.video) if args.video else sample_video(home / "sample.mp4")
    cluster = Cluster(home, env)
    t0 = time.time()
    try:
        broker = cluster.redis()
        env["VIDINTEL_CELERY_BROKER"] = broker  # sensor runs carry no execution config: the executor reads this
        config = celery_config(home, broker)
        for name, (queue, concurrency) in WORKERS.items():
            cluster.worker(name.split("-")[-1] + "-worker", name, config, queue, concurrency)
        cluster.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")])
        inbox = home / "data/ingest/incoming" / PROJECT
        inbox.mkdir(parents=True, exist_ok=True)
        shutil.copy(video, inbox / "clip.mp4")
        killed = kill_step(cluster, "gpu-worker", instance, args.kill_step, args.timeout) if args.kill_step else None

        runs = wait_runs(instance, args.timeout)
        steps: dict[str, str] = {}
        starts: dict[str, int] = {}
        for r in runs:
            steps |= steps_by_worker(instance, r.run_id)
            starts |= step_starts(instance, r.run_id)
        ok = all(r.status.value == "SUCCESS" for r in runs)
        result: dict[str, Any] = {
            "run_status": "SUCCESS" if ok else "FAILURE",
            "steps": steps,
            "runs": [
                {"run_id": r.run_id, "job": r.job_name, "status": r.status.value, "after": r.tags.get("vidintel/after")}
                for r in runs
            ],
            "wall_s": round(time.time() - t0, 1),
            "home": str(home),
        }
        if killed:
            result["killed"] = killed | {"starts": starts.get(killed["step"], 0)}
    finally:
        cluster.stop_all()
    if args.compare and result["run_status"] == "SUCCESS":
        result["equal_to_single_machine"] = compare_single_machine(video, home)
    return result


def compare_single_machine(video: Path, home: Path) -> bool:
    """Ingest the same video in this process, on a home of its own, with the GPU job; same markers and words?"""
    distributed = memory_summary(home)
    single = Path(tempfile.mkdtemp(prefix="vidintel-single-"))
    env = dict(os.environ, VIDINTEL_HOME=str(single), DAGSTER_HOME=str(single / "dagster"))
    env.pop("VIDINTEL_EXECUTOR", None)
    subprocess.run(
        [str(BIN / "vidintel"), "ingest", str(video), "--project", PROJECT, "--video-id", "clip", "--gpu", "--quiet"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return memory_summary(single) == distributed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", help="the video to ingest (default: a 8 s rendered sample with speech)")
    ap.add_argument("--home", help="the cluster's VIDINTEL_HOME (default: a new temporary folder)")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--compare", action="store_true", help="also ingest on one machine and compare the memories")
    ap.add_argument("--kill-step", help="SIGKILL the gpu worker's pool process once this step runs on it")
    result = run(ap.parse_args(argv))
    print(json.dumps(result))
    return 0 if result["run_status"] == "SUCCESS" else 1


if __name__ == "__main__":
    sys.exit(main())
