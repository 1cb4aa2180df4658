"""New videos in storage become partitions and runs, unattended.

The sensor lists ``projects/*/videos/*/source/`` in the ingestion store (S3 or the local folder) and the
drop prefix ``incoming/{project_id}/``. A dropped file is moved into its video's ``source/`` folder (a
server-side copy on S3) under a video id derived from its name. For every new or changed video object it
adds the partition ``{project}__{video}`` and requests a run whose run key is the object key plus its
ETag: Dagster never launches the same run key twice, so a re-listed object cannot run twice, while a
replaced object (new ETag) runs again.

* The cursor is a watermark plus the run keys seen in the hour before it (see :func:`scan`), so it
  survives restarts and stays bounded; listing paginates past 1,000 objects.
* Objects younger than ``settle_s`` are left for a later tick: a local file still being copied keeps
  changing, and S3 shows an object only when its upload completes.
* Non-video objects and objects with hostile keys are skipped with a logged reason. On the local
  store, so are symbolic links, FIFOs, sockets and devices, and symlinked folders are not walked: a
  link dropped in ``incoming/acme/`` that names another project's video is never adopted (or deleted).
* A video being ingested right now on this machine (its lock is held: ``vidintel ingest``, or a run) is
  left for a later tick; by then its memory is there, and the video is not run again.
* At most ``max_runs_per_tick`` videos are taken per tick; the instance's run queue limits how many runs
  run at once, so 500 new videos do not start 500 runs together.
* With ``VIDINTEL_SENSOR_BATCH`` over 1 (off by default), a project's small videos (a source of at most
  ``VIDINTEL_IN_PROCESS_MAX_MB``) found in one tick go that many to a run of the ``ingest_batch`` job; each video
  is still a run of ``ingest_video`` of its own within it (:mod:`vidintel_pipeline.defs.batch_job`).

A nightly schedule re-scans everything and requests runs for videos whose ``memory`` was never
materialized, so nothing is missed while the sensor was off.

Projects named in ``VIDINTEL_GPU_PROJECTS`` (comma-separated, or ``*``) are ingested with the
``ingest_video_gpu`` job, unattended too: the sensor picks the job per request, and a twin schedule,
``nightly_rescan_gpu``, re-scans them (a schedule targets one job). The GPU job stops short of ``memory``:
``gpu_merge_sensor`` then rebuilds the video's memory, exports and search index in a run of ``ingest_video``,
after every ``gpu_analysis`` materialization, however it was launched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, Optional

import dagster as dg

from vidintel.resources import VidintelStorage
from vidintel_pipeline.defs.batch_job import BATCH_OP, ingest_batch_job
from vidintel_pipeline.defs.jobs import ingest_video_gpu_job, ingest_video_job
from vidintel_pipeline.defs.partitions import run_tags
from vidintel_pipeline.intake import adopt_drop, partition_requests, register
from vidintel_pipeline.runtime.executors import SOURCE_BYTES_TAG, runs_in_process
from vidintel_pipeline.runtime.gpu import GPU_PROJECTS_ENV, GPU_REASON_TAG, gpu_projects, is_gpu_project
from vidintel_pipeline.storage.layout import (
    DROP_PREFIX,
    PROJECTS_PREFIX,
    VideoRef,
    is_source_key,
    parse_drop_key,
    parse_source_key,
)
from vidintel_pipeline.storage.local import LocalStore
from vidintel_pipeline.storage.locks import holder, video_lock_name
from vidintel_pipeline.storage.stores import ObjectInfo, StorageError, Store

SETTLE_S = float(os.environ.get("VIDINTEL_SENSOR_SETTLE_S", "10"))
MAX_RUNS_PER_TICK = int(os.environ.get("VIDINTEL_SENSOR_MAX_RUNS", "50"))
LOOKBACK_S = float(os.environ.get("VIDINTEL_SENSOR_LOOKBACK_S", "3600"))
INTERVAL_S = int(os.environ.get("VIDINTEL_SENSOR_INTERVAL_S", "30"))
# small videos to a run of ingest_batch (1: off, the default): the run worker's start-up (about 4 s here) is paid
# once per batch, but each video's run inside counts against the queue's limit too (see batch_job.py)
BATCH_SIZE = int(os.environ.get("VIDINTEL_SENSOR_BATCH", "1"))


@dataclass
class Found:
    ref: VideoRef
    obj: ObjectInfo

    @property
    def run_key(self) -> str:
        return f"{self.obj.key}@{self.obj.etag}"


def classify(key: str) -> tuple[Optional[VideoRef], str]:
    """(ref, "") for a video object in the layout, else (None, why it is skipped)."""
    return parse_source_key(key)


def watched(store: Store, log) -> Store:
    """The store, with the links and special files a local listing skips reported to the tick's log."""
    if isinstance(store, LocalStore):  # S3 has neither; a local folder can hold both
        store.skipped = lambda key, why: log.warning(f"skipping {key!r}: {why}")
    return store


def adopt_drops(store: Store, log, now: float, settle_s: float) -> None:
    """Move settled files from ``incoming/{project}/`` into their video's ``source/`` folder."""
    for obj in list(store.list_objects(DROP_PREFIX)):
        ref, name, why = parse_drop_key(obj.key)
        if ref is None:
            log.warning(f"skipping {obj.key!r}: {why}")
            continue
        if now - obj.last_modified < settle_s:
            continue
        try:
            adopt_drop(store, obj.key, ref, name)
        except StorageError as exc:
            log.warning(f"skipping {obj.key!r}: {exc}")
            continue
        log.info(f"adopted {obj.key} as {ref.partition_key}")


def scan(
    store: Store,
    cursor: Optional[str],
    log,
    *,
    now: Optional[float] = None,
    settle_s: Optional[float] = None,
    limit: Optional[int] = None,
    lookback_s: Optional[float] = None,
    busy: Optional[Callable[[VideoRef], Optional[str]]] = None,
) -> tuple[list[Found], str]:
    """New or changed, settled video objects not yet seen, oldest first; and the new cursor.

    The cursor holds a watermark and the run keys seen within ``lookback_s`` before it. The look-back
    matters because S3 stamps a multipart upload with the time it *started*: a large video that finishes
    uploading after the watermark moved on still has an older LastModified, and must not be missed.

    ``busy(ref)`` names who is ingesting a video right now (a ``vidintel ingest``): such a video is left
    unseen, like one still settling, and judged again at a later tick, when its ingest is over.
    """
    now = time.time() if now is None else now
    settle_s = SETTLE_S if settle_s is None else settle_s
    limit = MAX_RUNS_PER_TICK if limit is None else limit
    lookback_s = LOOKBACK_S if lookback_s is None else lookback_s
    state = json.loads(cursor) if cursor else {}
    since: float = state.get("since", 0.0)
    seen: dict[str, float] = state.get("seen", {})
    horizon = since - lookback_s
    fresh: list[tuple[ObjectInfo, Optional[VideoRef]]] = []
    for obj in store.list_objects(PROJECTS_PREFIX):
        if obj.last_modified < horizon or not is_source_key(obj.key):
            continue
        if f"{obj.key}@{obj.etag}" in seen:
            continue
        if now - obj.last_modified < settle_s:
            continue  # still being written, or just finished: next tick
        ref, why = classify(obj.key)
        if ref is None:
            log.info(f"skipping {obj.key!r}: {why}")  # remembered (ref None) so it is logged once
        elif busy is not None and (who := busy(ref)):
            log.info(f"{ref.partition_key} is being ingested by {who}: left for a later tick")
            continue
        fresh.append((obj, ref))
    fresh.sort(key=lambda f: (f[0].last_modified, f[0].key))
    taken = fresh[:limit]
    for obj, _ in taken:
        seen[f"{obj.key}@{obj.etag}"] = obj.last_modified
    if taken:
        since = max(since, taken[-1][0].last_modified)
    seen = {k: t for k, t in seen.items() if t >= since - lookback_s}
    return [Found(ref, obj) for obj, ref in taken if ref is not None], json.dumps({"since": since, "seen": seen})


def already_ingested(instance: dg.DagsterInstance, found: list[Found]) -> set[str]:
    """Run keys of videos whose ``memory`` comes from a run that started after the object was last written.

    A video ingested with ``vidintel ingest`` (or by an earlier sensor whose cursor was reset) is then in
    storage but done: running it again would only cost time and provider money. The run's *start* is
    what counts, not when its memory was written: a source replaced while its run was going (the sensor
    waits for a video being ingested) was not what that run read.
    """
    if not found:
        return set()
    materialized = instance.get_materialized_partitions(dg.AssetKey("memory"))
    done = set()
    for f in found:  # scan() hands out only objects with a valid ref
        if f.ref.partition_key not in materialized:
            continue
        last = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("memory"), asset_partitions=[f.ref.partition_key]), limit=1
        ).records
        if not last:
            continue
        run = instance.get_run_record_by_id(last[0].run_id)
        started = run.start_time if run is not None and run.start_time else last[0].timestamp
        if started >= f.obj.last_modified:
            done.add(f.run_key)
    return done


def ingesting(ref: VideoRef) -> Optional[str]:
    """Who holds the video's lock on this machine (a ``vidintel ingest``, or a run), or None."""
    return holder(video_lock_name(ref))


UNFINISHED = [
    s
    for s in dg.DagsterRunStatus
    if s not in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
]


def pending_run(instance: dg.DagsterInstance, ref: VideoRef, batched: Optional[dict[str, str]] = None) -> Optional[str]:
    """A queued or unfinished run of the video (``vidintel ingest --submit`` queued it, a backfill, or a batch:
    ``batched``, from :func:`pending_batches`), or None: the sensor judges the video again once that run is over,
    rather than queue a second run of it."""
    if batched and ref.partition_key in batched:
        return f"batch run {batched[ref.partition_key]}"
    runs = instance.get_run_records(
        dg.RunsFilter(tags={"dagster/partition": ref.partition_key}, statuses=UNFINISHED), limit=1
    )
    return f"run {runs[0].dagster_run.run_id}" if runs else None


def pending_batches(instance: dg.DagsterInstance) -> dict[str, str]:
    """{partition: batch run id} for every video in a queued or unfinished ``ingest_batch`` run."""
    out: dict[str, str] = {}
    for rec in instance.get_run_records(dg.RunsFilter(job_name=ingest_batch_job.name, statuses=UNFINISHED)):
        run_config: dict = dict(rec.dagster_run.run_config or {})
        for key in run_config.get("ops", {}).get(BATCH_OP, {}).get("config", {}).get("partition_keys", []):
            out[key] = rec.dagster_run.run_id
    return out


def job_for(ref: VideoRef) -> str:
    """The job an unattended run of ``ref`` takes: the GPU job for the projects ``VIDINTEL_GPU_PROJECTS`` names."""
    return ingest_video_gpu_job.name if is_gpu_project(ref.project_id) else ingest_video_job.name


def requests_for(found: list[Found], *, batch: int = 1) -> tuple[list[dg.RunRequest], list[str]]:
    """The run requests for ``found`` and their partitions; with ``batch`` > 1, a project's small videos (not of a GPU
    project) go ``batch`` to a run of ``ingest_batch`` (a group of one: a run of its own)."""
    by_project: dict[str, list[Found]] = {}
    for f in found:
        if batch > 1 and not is_gpu_project(f.ref.project_id) and runs_in_process({SOURCE_BYTES_TAG: str(f.obj.size)}):
            by_project.setdefault(f.ref.project_id, []).append(f)
    groups = [fs[i : i + batch] for fs in by_project.values() for i in range(0, len(fs), batch)]
    groups = [g for g in groups if len(g) > 1]  # a batch of one is a run of its own
    small = [f for g in groups for f in g]
    runs, keys = [], []
    for group in groups:
        parts = [f.ref.partition_key for f in group]
        keys += parts
        runs.append(
            dg.RunRequest(
                # Dagster never launches a run key twice: the same videos (same ETags) are never batched twice
                run_key="batch:" + hashlib.sha1("\n".join(f.run_key for f in group).encode()).hexdigest(),
                job_name=ingest_batch_job.name,
                run_config={"ops": {BATCH_OP: {"config": {"partition_keys": parts}}}},
                tags={"vidintel/project": group[0].ref.project_id, "vidintel/videos": str(len(group))},
            )
        )
    grouped = {id(f) for f in small}
    for f in (f for f in found if id(f) not in grouped):
        keys.append(f.ref.partition_key)
        job = job_for(f.ref)
        gpu = job == ingest_video_gpu_job.name
        runs.append(
            dg.RunRequest(
                run_key=f.run_key,
                partition_key=f.ref.partition_key,
                job_name=job,
                tags={
                    **run_tags(f.ref),
                    "vidintel/source_key": f.obj.key[:200],
                    SOURCE_BYTES_TAG: str(f.obj.size),  # a small one runs its steps in the run's process
                    **({GPU_REASON_TAG: f"{GPU_PROJECTS_ENV} names {f.ref.project_id}"} if gpu else {}),
                },
            )
        )
    return runs, sorted(set(keys))


@dg.sensor(
    jobs=[ingest_video_job, ingest_video_gpu_job, ingest_batch_job],
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns new or changed videos in the ingestion store (and incoming/{project}/ drops) into "
    "partitions and runs.",
)
def new_video_sensor(context: dg.SensorEvaluationContext, storage: VidintelStorage) -> dg.SensorResult:
    store = watched(storage.ingest(), context.log)
    adopt_drops(store, context.log, time.time(), SETTLE_S)
    batched = pending_batches(context.instance)
    found, cursor = scan(
        store,
        context.cursor,
        context.log,
        now=time.time(),
        busy=lambda ref: ingesting(ref) or pending_run(context.instance, ref, batched),
    )
    done = already_ingested(context.instance, found)
    if done:
        context.log.info(f"{len(done)} video(s) already ingested since they were last written: not run again")
    runs, keys = requests_for([f for f in found if f.run_key not in done], batch=BATCH_SIZE)
    if runs:
        context.log.info(
            f"{len(keys)} new or changed video(s) in {len(runs)} run(s): "
            f"{', '.join(keys[:10])}{' ...' if len(keys) > 10 else ''}"
        )
    return dg.SensorResult(
        run_requests=runs,
        cursor=cursor,
        dynamic_partitions_requests=partition_requests(f.ref for f in found if f.run_key not in done),
    )


def rescan(context: dg.ScheduleEvaluationContext, storage: VidintelStorage, gpu: bool):
    """Run requests for the stored videos whose memory was never materialized, of GPU projects or of the rest; not
    for one with a queued or unfinished run (a backlog still draining at 03:00), nor one being ingested here."""
    instance = context.instance
    done = instance.get_materialized_partitions(dg.AssetKey("memory"))
    batched = pending_batches(instance)
    found = []
    for obj in watched(storage.ingest(), context.log).list_objects(PROJECTS_PREFIX):
        ref, _ = classify(obj.key)
        if ref is not None and ref.partition_key not in done and is_gpu_project(ref.project_id) == gpu:
            who = ingesting(ref) or pending_run(instance, ref, batched)
            if who:
                context.log.info(f"{ref.partition_key} has no memory yet, but {who} is on it: not requested")
                continue
            found.append(Found(ref, obj))
    runs, _ = requests_for(found)
    register(instance, [f.ref for f in found])
    for r in runs:
        yield dg.RunRequest(run_key=f"rescan:{r.run_key}", partition_key=r.partition_key, tags=r.tags)
    if not runs:
        yield dg.SkipReason(
            "every stored video has its memory" if gpu_projects() or not gpu else f"{GPU_PROJECTS_ENV} names no project"
        )


@dg.schedule(
    job=ingest_video_job,
    cron_schedule="0 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly re-scan: runs every stored video whose memory was never materialized.",
)
def nightly_rescan(context: dg.ScheduleEvaluationContext, storage: VidintelStorage):
    yield from rescan(context, storage, gpu=False)


@dg.schedule(
    job=ingest_video_gpu_job,
    cron_schedule="0 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly re-scan of the projects VIDINTEL_GPU_PROJECTS names, with the GPU job.",
)
def nightly_rescan_gpu(context: dg.ScheduleEvaluationContext, storage: VidintelStorage):
    yield from rescan(context, storage, gpu=True)


GPU_KEY, MEMORY_KEY, READY_KEY = dg.AssetKey("gpu_analysis"), dg.AssetKey("memory"), dg.AssetKey("derived_markers")
AFTER_TAG = "vidintel/after"  # on the runs gpu_merge_sensor requests


def last_storage_id(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> Optional[int]:
    """The event storage id of ``key``'s latest materialization for ``partition``, or None."""
    got = instance.fetch_materializations(dg.AssetRecordsFilter(key, asset_partitions=[partition]), limit=1).records
    return got[0].storage_id if got else None


def merge_requests(
    instance: dg.DagsterInstance, cursor: Optional[str], log: logging.Logger, limit: int = 200
) -> tuple[list[dg.RunRequest], Optional[str]]:
    """Runs of memory, exports and search_index for the partitions whose gpu_analysis landed after ``cursor`` (an
    event storage id) and whose memory is older than it; the new cursor."""
    from vidintel_pipeline.defs.assets import memory_and_after

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=GPU_KEY, after_storage_id=int(cursor) if cursor else None),
        limit=limit,
        ascending=True,
    ).records
    latest: dict[str, int] = {}
    for rec in records:
        if rec.partition_key:
            latest[rec.partition_key] = rec.storage_id
    runs = []
    for pk, sid in latest.items():
        if (last_storage_id(instance, MEMORY_KEY, pk) or 0) > sid:
            continue  # memory was rebuilt since (`vidintel ingest --gpu` does it in the same command)
        if last_storage_id(instance, READY_KEY, pk) is None:
            log.warning(f"{pk}: gpu_analysis landed, but ingest_video never ran for it: memory is built when it does")
            continue
        runs.append(
            dg.RunRequest(
                run_key=f"gpu-merge:{pk}:{sid}",
                partition_key=pk,
                job_name=ingest_video_job.name,
                asset_selection=[a.key for a in memory_and_after],
                tags={**run_tags(VideoRef.from_partition_key(pk)), AFTER_TAG: "gpu_analysis"},
            )
        )
    return runs, str(records[-1].storage_id) if records else cursor


@dg.sensor(
    job=ingest_video_job,
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a video's gpu_analysis lands (the GPU job, a backfill, its asset page), rebuilds its memory, "
    "exports and search index so they hold the GPU results.",
)
def gpu_merge_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    runs, cursor = merge_requests(context.instance, context.cursor, context.log)
    if runs:
        context.log.info(f"merging GPU results into {len(runs)} memory document(s)")
    return dg.SensorResult(run_requests=runs, cursor=cursor)
