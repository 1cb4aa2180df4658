"""Hand ingest runs to the instance's run queue (``vidintel ingest --submit``) and follow them to their end.

In-process ingest (the CLI's default) runs the job inside the CLI, beside the queue: no concurrency limits, no
routing launcher, no Celery or Kubernetes executor. A submitted run is an ordinary queued run: the daemon dequeues
it within the queue's limits, the instance's run launcher starts it (a GPU run on the GPU route), and the
executor ``VIDINTEL_EXECUTOR`` names runs its steps, on a worker if that is Celery or Kubernetes.

The run is created with ``dagster job launch`` (Dagster's public way to submit a run from a shell) against the
code location ``vidintel_pipeline.definitions``, the name ``workspace.yaml`` and ``make ui`` give it; set
``VIDINTEL_WORKSPACE`` to a deployment's workspace file to submit to its code server instead. Progress is read
back from the run's event log (the phase lines :mod:`vidintel_pipeline.defs.progress` writes).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import dagster as dg

from vidintel_pipeline.errors import UserError

LAUNCHED_BY_TAG = "vidintel/submitted_by"
WORKSPACE_ENV = "VIDINTEL_WORKSPACE"
QUEUED_HINT_S = 60.0  # a run still queued this long: say why it may be (a full queue, or no daemon)
MERGE_WAIT_S = 300.0  # after a GPU run: how long gpu_merge_sensor has to start the run of memory and after
_PHASE = re.compile(r"^phase=(\w+) progress=([\d.]+)%")


def phase_of(entry: Any) -> Optional[dict[str, Any]]:
    """The progress an event log entry reports (``current_phase``, ``phase_progress``), or None: a phase's start and
    end are the step's AssetObservations, the reports in between log lines (:mod:`vidintel_pipeline.defs.progress`)."""
    ev = entry.dagster_event
    if ev is not None and ev.is_asset_observation:
        meta = ev.asset_observation_data.asset_observation.metadata
        if "progress/current_phase" in meta and "progress/phase_progress" in meta:
            return {"current_phase": meta["progress/current_phase"].value,
                    "phase_progress": float(meta["progress/phase_progress"].value)}  # fmt: skip
        return None
    m = _PHASE.match(entry.user_message or "") if ev is None else None
    return {"current_phase": m.group(1), "phase_progress": float(m.group(2))} if m else None


def check_queue(instance: dg.DagsterInstance) -> None:
    """Refuse to submit to a queue no daemon serves: the run would wait for ever, and nothing would say why."""
    if not isinstance(instance.run_coordinator, dg.QueuedRunCoordinator):
        return  # runs launch at once, no daemon needed
    status = instance.get_daemon_statuses(["QUEUED_RUN_COORDINATOR"])["QUEUED_RUN_COORDINATOR"]
    if not status.healthy:
        raise UserError(
            f"no Dagster daemon serves the run queue of the instance in {os.environ.get('DAGSTER_HOME')}: "
            "start one (`make ui`, or `dagster-daemon run -w workspace.yaml`), or ingest without --submit"
        )


def launch(job: str, tags: dict[str, str], run_config: dict[str, Any]) -> str:
    """Submit a run of ``job`` to the instance's queue; its run id."""
    run_id = str(uuid.uuid4())
    ws = os.environ.get(WORKSPACE_ENV)
    target = ["-w", ws] if ws else ["-m", "vidintel_pipeline.definitions"]
    cmd = [sys.executable, "-m", "dagster", "job", "launch", *target, "-j", job, "--run-id", run_id]
    cmd += ["--tags", json.dumps(tags), "--config-json", json.dumps(run_config)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or done.stdout).strip().splitlines() if ln.strip()]
        raise UserError(
            f"dagster job launch could not submit {job}: " + (lines[-1] if lines else f"exit {done.returncode}")
        )
    return run_id


def submit(
    path: str,
    project: str,
    video_id: Optional[str] = None,
    *,
    resources_config: Optional[dict[str, Any]] = None,
    gpu: bool = False,
) -> dict[str, Any]:
    """Store the video, register its partition and queue a run of every asset for it (the GPU job with ``gpu``)."""
    from vidintel.resources import VidintelStorage
    from vidintel_pipeline.defs.partitions import run_tags
    from vidintel_pipeline.intake import check_local_file, register, store_source
    from vidintel_pipeline.runtime.executors import SOURCE_BYTES_TAG
    from vidintel_pipeline.runtime.in_process import GPU_DEFAULTS
    from vidintel_pipeline.runtime.instance import get_instance
    from vidintel_pipeline.storage.locks import Busy, held, video_lock_name

    ref, src = check_local_file(path, project, video_id, VidintelStorage())
    instance = get_instance()
    check_queue(instance)
    try:
        # held until the run exists: the sensor leaves a locked video alone, and then sees its pending run;
        # the run itself waits for the lock, so it cannot start before the source is in place
        with held(video_lock_name(ref), "vidintel ingest --submit"):
            store_source(VidintelStorage().for_video(ref)[0], ref, src)
            register(instance, [ref])
            job = "ingest_video_gpu" if gpu else "ingest_video"
            tags = {**run_tags(ref), "dagster/partition": ref.partition_key, LAUNCHED_BY_TAG: "vidintel ingest",
                    SOURCE_BYTES_TAG: str(src.stat().st_size)}  # fmt: skip
            run_config = {"resources": {**(GPU_DEFAULTS if gpu else {}), **(resources_config or {})}}
            run_id = launch(job, tags, run_config)
    except Busy as exc:
        raise UserError(
            f"{ref.project_id}/{ref.video_id} is already being ingested by {exc.holder}: "
            "wait for it to finish, then ingest again"
        ) from None
    return {"run_id": run_id, "partition": ref.partition_key, "project_id": ref.project_id, "video_id": ref.video_id}


@dataclass
class Followed:
    """A submitted run being followed: what it is for, where its event log was read up to, how it ended."""

    run_id: str
    partition: str
    gpu: bool = False
    cursor: Optional[str] = None
    status: Optional[dg.DagsterRunStatus] = None
    queued_since: float = field(default_factory=time.monotonic)
    told_queued: bool = False
    wall_s: float = 0.0  # from the run's start to its end
    queued_s: float = 0.0  # from its creation to its start
    reasons: list[str] = field(default_factory=list)
    merge_of: Optional[str] = None  # for the run gpu_merge_sensor starts after a GPU run: that run's id
    after_ts: float = 0.0  # and when that GPU run ended


def follow(
    instance: dg.DagsterInstance,
    runs: list[Followed],
    *,
    progress: Optional[Callable[[Followed, dict[str, Any]], None]] = None,
    changed: Optional[Callable[[Followed], None]] = None,
    poll_s: float = 1.0,
) -> list[Followed]:
    """Poll the runs until each has finished (a GPU run: and the merge run after it); ``progress`` gets every
    phase report of a run, ``changed`` every status change. Returns the runs that count, merge runs included."""
    from vidintel_pipeline.defs.sensors import AFTER_TAG

    active = list(runs)
    out = list(runs)
    while active:
        for r in list(active):
            if r.merge_of is not None and r.run_id == "":  # waiting for gpu_merge_sensor to start it
                found = instance.get_run_records(
                    dg.RunsFilter(tags={"dagster/partition": r.partition, AFTER_TAG: "gpu_analysis"}), limit=1
                )
                rec = found[0] if found else None
                if rec is not None and rec.create_timestamp.timestamp() >= r.after_ts:
                    r.run_id, r.queued_since = rec.dagster_run.run_id, time.monotonic()
                elif time.monotonic() - r.queued_since > MERGE_WAIT_S:
                    r.status = dg.DagsterRunStatus.FAILURE
                    r.reasons = [
                        f"no run of memory and after started within {MERGE_WAIT_S:.0f} s: is gpu_merge_sensor on?"
                    ]
                    active.remove(r)
                    if changed:
                        changed(r)
                continue
            record = instance.get_run_record_by_id(r.run_id)
            if record is None:
                continue
            conn = instance.get_records_for_run(r.run_id, cursor=r.cursor, limit=500)
            r.cursor = conn.cursor
            for ev in conn.records:
                told = phase_of(ev.event_log_entry)
                if told and progress:
                    progress(r, told)
            status = record.dagster_run.status
            if status != r.status:
                r.status = status
                if changed:
                    changed(r)
            if status == dg.DagsterRunStatus.QUEUED and not r.told_queued:
                if time.monotonic() - r.queued_since > QUEUED_HINT_S:
                    r.told_queued = True
                    ahead = len(instance.get_run_ids(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])))
                    print(
                        f"vidintel: {r.partition} still queued after {QUEUED_HINT_S:.0f} s ({ahead} queued runs): the "
                        "queue's limits hold it, or the daemon has stopped",
                        file=sys.stderr,
                    )
            if record.dagster_run.is_finished and conn.has_more is False:
                active.remove(r)
                if record.start_time and record.end_time:
                    r.wall_s = round(record.end_time - record.start_time, 2)
                    r.queued_s = round(max(0.0, record.start_time - record.create_timestamp.timestamp()), 2)
                if status != dg.DagsterRunStatus.SUCCESS:
                    r.reasons = reasons_for(instance, r.run_id)
                elif r.gpu:  # the GPU job stops short of memory: gpu_merge_sensor runs the rest
                    merge = Followed("", r.partition, merge_of=r.run_id, after_ts=record.end_time or 0.0)
                    active.append(merge)
                    out.append(merge)
        if active:
            time.sleep(poll_s)
    return out


def reasons_for(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Why the run failed: each failed step's reason, else the run's own failure message."""
    from vidintel_pipeline.runtime.in_process import failure_reasons

    events = [
        e.dagster_event
        for e in instance.all_logs(run_id)
        if e.dagster_event is not None and (e.dagster_event.is_step_failure or e.dagster_event.is_run_failure)
    ]
    steps = [e for e in events if e.is_step_failure]
    if steps:
        return failure_reasons(steps)
    run = instance.get_run_by_id(run_id)
    if run is not None and run.status == dg.DagsterRunStatus.CANCELED:
        return ["canceled"]
    msgs = [e.message for e in events if e.message]
    return msgs[-1:] or ["see the run in the UI"]
