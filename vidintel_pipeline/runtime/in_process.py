"""Jobs run in this process on the CLI's instance (independent steps side by side: runtime/threaded.py): ingest, reels.

The runs are ordinary Dagster runs on the shared instance, so they show up in the UI with their lineage,
metadata and progress events; failures come back as :class:`~vidintel_pipeline.errors.UserError` naming
each failed step's reason.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Optional

from vidintel_pipeline.defs.progress_bar import ProgressBar
from vidintel_pipeline.errors import UserError
from vidintel_pipeline.runtime.instance import ensure_instance_home


def ingest(
    path: str,
    project: str,
    video_id: Optional[str] = None,
    *,
    quiet: bool = False,
    resources_config: Optional[dict[str, Any]] = None,
    gpu: bool = False,
    stored: bool = False,
    report_costs: bool = True,
    instance: Optional[Any] = None,
    probed: bool = False,
) -> dict[str, Any]:
    """Copy a video into storage, register its partition and materialize every asset for it. ``stored``: ``path``
    is the video's own stored source (a re-run, ``vidintel stale --run``): checked, not copied again.
    ``report_costs``: then refresh the per-project cost report (a batch does it once, at its end). ``instance``: the
    caller's open instance (a batch keeps one per worker: opening one checks its schema, about 0.1 s). ``probed``:
    the caller has just checked the file (:func:`~vidintel_pipeline.intake.check_local_file`)."""
    from vidintel.resources import VidintelStorage
    from vidintel_pipeline.intake import check_local_file, register, store_source

    ref, src = check_local_file(path, project, video_id, VidintelStorage(), probed=probed)
    ensure_instance_home()
    from vidintel_pipeline.definitions import defs
    from vidintel_pipeline.defs.assets import memory_and_after
    from vidintel_pipeline.defs.partitions import run_tags
    from vidintel_pipeline.defs.progress import listening
    from vidintel_pipeline.defs.sensors import AFTER_TAG
    from vidintel_pipeline.runtime.gpu import COMPUTE_TAG, GPU_REASON_TAG, gpu_reason
    from vidintel_pipeline.runtime.instance import get_instance
    from vidintel_pipeline.runtime.threaded import execute_threaded
    from vidintel_pipeline.storage.locks import Busy, held, video_lock_name

    with contextlib.ExitStack() as stack:
        # one ingest of a video at a time: a second one (another CLI, or a run the daemon launched) would
        # interleave its source, chunks and memory with ours. Held until our run has finished.
        try:
            stack.enter_context(held(video_lock_name(ref), "vidintel ingest"))
        except Busy as exc:
            raise UserError(
                f"{ref.project_id}/{ref.video_id} is already being ingested by {exc.holder}: "
                "wait for it to finish, then ingest again"
            ) from None
        if not stored:
            store_source(VidintelStorage().for_video(ref)[0], ref, src)
        instance = instance or get_instance()
        register(instance, [ref])
        job = defs.resolve_job_def("ingest_video_gpu" if gpu else "ingest_video")
        run_config = {
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            "resources": {**(GPU_DEFAULTS if gpu else {}), **(resources_config or {})},
        }
        tags = {**run_tags(ref), **(job.tags or {})}
        why = gpu_reason(tags, run_config)  # tagged as GPU work, as the routing launcher would tag it
        if why:
            tags |= {COMPUTE_TAG: "gpu", GPU_REASON_TAG: why[:250]}
        bar = ProgressBar() if not quiet else None
        t0 = time.perf_counter()
        with listening(bar if bar else (lambda e: None)):
            result = execute_threaded(  # transcript and visual_analysis side by side (runtime/threaded.py)
                job,
                instance=instance,
                partition_key=ref.partition_key,
                tags=tags,
                raise_on_error=False,
                run_config=run_config,
            )
            if gpu and result.success:  # the GPU job stops short of memory: build it, with the GPU results, now
                result = execute_threaded(
                    defs.resolve_job_def("ingest_video"),
                    instance=instance,
                    partition_key=ref.partition_key,
                    asset_selection=[a.key for a in memory_and_after],
                    tags={**run_tags(ref), AFTER_TAG: "gpu_analysis"},
                    raise_on_error=False,
                    run_config={
                        "loggers": run_config["loggers"],  # what memory and after use of the user's config
                        "resources": {k: v for k, v in (resources_config or {}).items() if k in ("costs", "storage")},
                    },
                )
        if bar:
            bar.close()
    wall = time.perf_counter() - t0
    if result.success and report_costs:  # keep the per-project cost report in the UI current
        report_project_costs(instance)
    if not result.success:
        raise UserError(
            f"run {result.run_id} failed for {ref.partition_key}:\n  " + "\n  ".join(failure_reasons(result.all_events))
        )
    return {
        "run_id": result.run_id,
        "partition": ref.partition_key,
        "project_id": ref.project_id,
        "video_id": ref.video_id,
        "wall_s": round(wall, 2),
        "gpu_reason": why,
    }


def load_memory(project: str, video: str) -> dict[str, Any]:
    """A video's memory document from storage; a UserError when it has none."""
    from vidintel.resources import VidintelStorage
    from vidintel_pipeline.storage.layout import InvalidIdError, VideoRef
    from vidintel_pipeline.storage.stores import StorageError

    try:
        ref = VideoRef(project, video)
    except InvalidIdError as exc:
        raise UserError(str(exc)) from exc
    try:
        return VidintelStorage().for_video(ref)[1].get_json(ref.memory_key)
    except StorageError:
        raise UserError(
            f"no memory for project {project!r} video {video!r}: it has not been ingested (or failed)"
        ) from None


def report_project_costs(instance: Optional[Any] = None) -> None:
    """Materialize ``project_costs`` (the per-project cost report in the UI) on the CLI's instance (``instance``,
    when the caller has it open)."""
    from vidintel_pipeline.definitions import defs
    from vidintel_pipeline.runtime.instance import get_instance

    defs.resolve_job_def("cost_report").execute_in_process(
        instance=instance or get_instance(),
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )


GPU_DEFAULTS = {"transcription": {"config": {"plugin": "openai_whisper"}}}  # as the ingest_video_gpu job's own config


def failure_reasons(events: Any) -> list[str]:
    """Why each failed step of a run's events failed, in the user's words (a ``dg.Failure`` description or the
    root exception)."""
    reasons = []
    for ev in events:
        if ev.is_step_failure and ev.step_failure_data and ev.step_failure_data.error:
            err = ev.step_failure_data.error
            while err.cause is not None:  # Dagster wraps the user's exception: report the root cause
                err = err.cause
            msg = (
                ev.step_failure_data.user_failure_data.description
                if ev.step_failure_data.user_failure_data and ev.step_failure_data.user_failure_data.description
                else err.message.strip().splitlines()[-1]
            )
            reasons.append(f"{ev.step_key}: {msg}")
    return reasons or ["see the run in the UI"]


def compile_reel(
    project: str,
    *,
    query: str = "",
    marker_type: str = "",
    label: str = "",
    max_seconds: float = 60.0,
    mode: str = "hybrid",
) -> dict[str, Any]:
    """Run the ``compile_reel`` job on the CLI's instance; returns the reel's manifest."""
    from vidintel.resources import VidintelStorage
    from vidintel_pipeline.definitions import defs
    from vidintel_pipeline.runtime.instance import get_instance
    from vidintel_pipeline.storage.layout import project_output_key

    ensure_instance_home()
    config = {
        "project_id": project,
        "query": query,
        "marker_type": marker_type,
        "label": label,
        "max_seconds": max_seconds,
        "mode": mode,
    }
    result = defs.resolve_job_def("compile_reel").execute_in_process(
        instance=get_instance(),
        raise_on_error=False,
        run_config={
            "ops": {"compilation": {"config": config}},
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        },
    )
    if not result.success:
        raise UserError(f"no reel (run {result.run_id}):\n  " + "\n  ".join(failure_reasons(result.all_events)))
    name = result.asset_materializations_for_node("compilation")[0].metadata["name"].value
    manifest = (
        VidintelStorage().output().scoped(project).get_json(project_output_key(project, "compilations", f"{name}.json"))
    )
    return manifest | {"run_id": result.run_id}
