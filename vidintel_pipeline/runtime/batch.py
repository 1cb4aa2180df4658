"""Many videos ingested in-process at once (``vidintel ingest DIR``): a few worker processes, each on its own CPUs.

Each worker imports Dagster and vidintel once and keeps its models loaded (faster-whisper's model is cached per
process) from one video to the next, so the fixed cost is paid per worker, not per video. Worker ``i`` is pinned to
its share of this process's CPUs: everything that sizes itself by :func:`~vidintel_pipeline.runtime.cpus.usable_cpus`
(decoder processes, model threads) then sizes itself to that share instead of oversubscribing the machine: 20
12 s 720p clips on 2 workers took 79.8 s pinned, 99.6 s unpinned (2 cores). The cost report is refreshed once,
after the last video.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from typing import Any, Callable, Iterator, Optional

from vidintel_pipeline.errors import UserError
from vidintel_pipeline.runtime.cpus import usable_cpus

MAX_DEFAULT_JOBS = 4  # each worker peaks at about 600 MB resident, and the queue of 2 runs is the daemon's choice


def default_jobs(gpu: bool) -> int:
    """One worker per CPU, up to MAX_DEFAULT_JOBS; one for GPU work (the GPU is the shared part)."""
    return 1 if gpu else max(1, min(MAX_DEFAULT_JOBS, usable_cpus()))


def cpu_shares(jobs: int) -> list[set[int]]:
    """This process's CPUs dealt into ``jobs`` disjoint sets (a CPU to several workers when there are fewer)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux: no pinning
        return [set() for _ in range(jobs)]
    if len(cpus) < jobs:
        return [{cpus[i % len(cpus)]} for i in range(jobs)]
    return [set(cpus[i::jobs]) for i in range(jobs)]


def checked(files: list[str], project: str) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Every file checked before any is ingested: rows for the invalid ones, and (file, video id) for the rest."""
    from vidintel.resources import VidintelStorage
    from vidintel_pipeline.intake import check_local_file

    storage = VidintelStorage()

    def check(f: str) -> Any:
        try:
            return check_local_file(f, project, None, storage)[0]
        except UserError as exc:
            return exc

    # probes in parallel (mostly ffmpeg and libav, outside the GIL): 20 720p clips took 2.5 s one by one here
    with ThreadPoolExecutor(max_workers=min(8, usable_cpus())) as pool:
        outcomes = list(pool.map(check, files))
    rows: list[dict[str, Any]] = []
    valid: list[tuple[str, str]] = []
    ids: dict[str, str] = {}
    for f, ref in zip(files, outcomes, strict=True):
        if isinstance(ref, UserError):
            rows.append({"file": f, "status": "invalid", "error": str(ref)})
            continue
        if ref.video_id in ids:  # two names that fold to one id would replace each other
            rows.append(
                {"file": f, "status": "invalid", "error": f"same video id {ref.video_id!r} as {ids[ref.video_id]}"}
            )
            continue
        ids[ref.video_id] = f
        valid.append((f, ref.video_id))
    return rows, valid


def _pin(shares: Any) -> None:
    """Worker initializer: take the next CPU share and keep to it."""
    try:
        share = shares.get_nowait()
    except queue.Empty:
        return
    if share and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, share)


_instance: list[Any] = []  # this worker's open instance, from its first video on


def _ingest_one(path: str, project: str, video_id: str, gpu: bool, resources_config: Optional[dict]) -> dict:
    """One video, in a worker: the row of the summary (errors are rows too, so one video never stops the rest)."""
    from vidintel_pipeline.runtime.in_process import ingest, load_memory
    from vidintel_pipeline.runtime.instance import get_instance

    try:
        if not _instance:
            _instance.append(get_instance())
        info = ingest(
            path,
            project,
            video_id,
            quiet=True,
            gpu=gpu,
            resources_config=resources_config,
            report_costs=False,
            instance=_instance[0],
            probed=True,  # checked() has probed every file
        )
        warnings = load_memory(project, video_id).get("warnings", [])
    except UserError as exc:
        return {"file": path, "video_id": video_id, "status": "failed", "error": str(exc)}
    except Exception as exc:  # not the user's fault: still one row, with the reason
        return {"file": path, "video_id": video_id, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    return {"file": path, "video_id": video_id, "status": "ok", "wall_s": info["wall_s"], "run_id": info["run_id"],
            "warnings": len(warnings)}  # fmt: skip


def _start(shares: Any) -> None:
    """Worker initializer: keep to the next CPU share, then import Dagster and vidintel (about 3 s here) while the
    parent is still checking the files."""
    _pin(shares)
    import vidintel_pipeline.definitions  # noqa: F401
    import vidintel_pipeline.runtime.in_process  # noqa: F401


@contextlib.contextmanager
def workers(jobs: int) -> Iterator[Optional[ProcessPoolExecutor]]:
    """``jobs`` worker processes, starting at once (None for ``jobs`` 1: the videos go one after another here)."""
    if jobs <= 1:
        yield None
        return
    from vidintel_pipeline.runtime.instance import get_instance

    # the instance's schema made here first, not by workers at the same moment: without this (and the partitions
    # registered here, in ingest_all), about one folder-test run in six failed a video (error not captured; two
    # workers creating a new SQLite instance at once is the likely cause, as seen with a Celery worker)
    get_instance().event_log_storage.get_maximum_record_id()
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of this process's threads or locks
    shares = ctx.Queue()
    for share in cpu_shares(jobs):
        shares.put(share)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_start, initargs=(shares,)) as pool:
        for _ in range(jobs):  # the pool starts a process per task it is given, when none is idle: all now
            pool.submit(int)
        yield pool


def ingest_all(
    videos: list[tuple[str, str]],
    project: str,
    *,
    pool: Optional[ProcessPoolExecutor] = None,
    gpu: bool = False,
    resources_config: Optional[dict[str, Any]] = None,
    done: Optional[Callable[[dict[str, Any]], None]] = None,
) -> list[dict[str, Any]]:
    """Ingest each (file, video id) on the ``pool`` of :func:`workers` (None: one after another in this process); a
    row per video, in the order given. ``done(row)`` is told as each finishes."""
    from vidintel_pipeline.runtime.in_process import report_project_costs

    rows: dict[int, dict[str, Any]] = {}
    if pool is None:
        for i, (f, vid) in enumerate(videos):
            rows[i] = _ingest_one(f, project, vid, gpu, resources_config)
            if done:
                done(rows[i])
    else:
        from vidintel_pipeline.intake import register
        from vidintel_pipeline.runtime.instance import get_instance
        from vidintel_pipeline.storage.layout import VideoRef

        register(get_instance(), [VideoRef(project, vid) for _, vid in videos])  # here, before any worker runs
        futures = {pool.submit(_ingest_one, f, project, vid, gpu, resources_config): i
                   for i, (f, vid) in enumerate(videos)}  # fmt: skip
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                rows[i] = fut.result()
            except Exception as exc:  # the worker itself died (killed, out of memory)
                f, vid = videos[i]
                rows[i] = {"file": f, "video_id": vid, "status": "failed", "error": f"worker lost: {exc}"}
            if done:
                done(rows[i])
    if any(r["status"] == "ok" for r in rows.values()):
        try:
            report_project_costs()
        except Exception as exc:  # the videos are in; only the UI's report is stale
            print(f"vidintel: warning: the cost report was not refreshed: {exc}", file=sys.stderr)
    return [rows[i] for i in range(len(videos))]
