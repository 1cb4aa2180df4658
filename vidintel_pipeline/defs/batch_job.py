"""The ``ingest_batch`` job: several short videos in one run, each still an ``ingest_video`` run of its own.

With ``VIDINTEL_SENSOR_BATCH`` over 1 (off by default), ``new_video_sensor`` groups a project's small videos into
runs of this job. One run pays the run worker's start-up (a fresh interpreter that imports Dagster and the code
location) once for the batch, instead of once per video; its one step then runs ``ingest_video`` for each video in
this process, one after another, as ``vidintel ingest DIR`` does. Each video's run is an ordinary run of its
partition (tagged ``vidintel/batch`` with the batch's run id), so its lineage, progress, metadata, costs and checks
are per video in the UI as before, and a video that fails fails only its own run: the batch goes on, and fails at
the end, naming each video that failed and why. A batch cancelled from the UI stops before its next video; one
re-executed skips the videos an earlier attempt of it ingested.

What it costs: each video's run counts against the queue's ``max_concurrent_runs`` while it runs, beside its
batch's (a batch holds two slots), and those runs bypass the queue's per-partition limit (the video's lock, on
this machine, still keeps two ingests of a video apart). So it is for one machine, with a queue of at least 3 when
other runs must go on beside a batch; on a deployment whose runs each get a pod of their own, the runs inside a
batch have no pod for run monitoring to find, so leave it off there.
"""

import time

import dagster as dg
from pydantic import Field

from vidintel_pipeline.storage.layout import VideoRef

BATCH_JOB = "ingest_batch"
BATCH_OP = "ingest_videos"
BATCH_TAG = "vidintel/batch"  # on each video's run: the run id of the batch that ran it


class BatchConfig(dg.Config):
    partition_keys: list[str] = Field(description="The videos' partitions ({project}__{video}), in order.")


@dg.op(name=BATCH_OP, description="Run ingest_video for each partition, one after another, in this process.")
def ingest_videos(context: dg.OpExecutionContext, config: BatchConfig) -> dg.Output:
    from vidintel_pipeline.definitions import defs
    from vidintel_pipeline.defs.partitions import run_tags
    from vidintel_pipeline.runtime.in_process import failure_reasons
    from vidintel_pipeline.runtime.threaded import execute_threaded
    from vidintel_pipeline.storage.locks import held, video_lock_name

    job = defs.resolve_job_def("ingest_video")
    me = context.instance.get_run_by_id(context.run_id)
    attempts = {context.run_id} | {
        me.tags[t] for t in ("dagster/root_run_id", "dagster/parent_run_id") if me and t in me.tags
    }
    rows: list[tuple[str, str, str, float]] = []  # partition, status, run id or reason, seconds
    for i, key in enumerate(config.partition_keys, 1):
        t0 = time.perf_counter()
        now = context.instance.get_run_by_id(context.run_id)
        if now is not None and now.status in (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED):
            rows += [(k, "failed", "not run: the batch was cancelled", 0.0) for k in config.partition_keys[i - 1 :]]
            break
        try:
            ref = VideoRef.from_partition_key(key)
            done = _ingested_by(context.instance, key, attempts)
            if done:
                rows.append((key, "ok", f"{done} (an earlier attempt of this batch)", 0.0))
                context.log.info(f"[{i}/{len(config.partition_keys)}] {key}: ingested by run {done} already")
                continue

            def waiting(who: str, key: str = key) -> None:
                context.log.warning(f"{key} is being ingested by {who}: waiting for it to finish")

            # a run in this process never uses the job's executor, which would hold the lock: hold it here
            with held(video_lock_name(ref), f"batch run {context.run_id}", wait=True, waiting=waiting):
                result = execute_threaded(  # its transcript and visual pass side by side (runtime/threaded.py)
                    job,
                    instance=context.instance,
                    partition_key=key,
                    tags={**run_tags(ref), BATCH_TAG: context.run_id},
                    raise_on_error=False,
                    run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                )
            if result.success:
                rows.append((key, "ok", result.run_id, time.perf_counter() - t0))
            else:
                why = "; ".join(failure_reasons(result.all_events))
                rows.append((key, "failed", f"run {result.run_id}: {why}", time.perf_counter() - t0))
        except Exception as exc:  # an id that is no video's, a lock error: this video's row, the others go on
            rows.append((key, "failed", f"{type(exc).__name__}: {exc}", time.perf_counter() - t0))
        key_, status, what, seconds = rows[-1]
        context.log.info(f"[{i}/{len(config.partition_keys)}] {status} {key_} ({seconds:.1f} s): {what}")
    table = "| video | status | run or reason | seconds |\n|---|---|---|---|\n" + "\n".join(
        f"| {k} | {s} | {w.replace('|', '/')[:300]} | {t:.1f} |" for k, s, w, t in rows
    )
    failed = [(k, w) for k, s, w, _ in rows if s != "ok"]
    meta: dict[str, dg.MetadataValue] = {
        "videos": dg.MetadataValue.md(table),
        "ok": dg.MetadataValue.int(len(rows) - len(failed)),
        "failed": dg.MetadataValue.int(len(failed)),
    }
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} of {len(rows)} video(s) failed (the others are in):\n"
            + "\n".join(f"  {k}: {w}" for k, w in failed),
            metadata=meta,
            allow_retries=False,  # each video's run has had its own step retries
        )
    return dg.Output(None, metadata=meta)


def _ingested_by(instance: dg.DagsterInstance, key: str, batches: set[str]) -> str:
    """The run of one of ``batches`` that materialized ``key``'s memory last, or ''."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("memory"), asset_partitions=[key]), limit=1
    ).records
    run = instance.get_run_by_id(records[0].run_id) if records else None
    return run.run_id if run is not None and run.tags.get(BATCH_TAG) in batches else ""


@dg.job(
    name=BATCH_JOB,
    executor_def=dg.in_process_executor,  # the one step in the run worker: no process of its own to start
    description="Ingest several short videos in one run (new_video_sensor's batches): an ingest_video run each, "
    "one after another, in this run's process.",
)
def ingest_batch_job() -> None:
    ingest_videos()
