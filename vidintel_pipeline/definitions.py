"""The Dagster code location: ``dagster dev -m vidintel_pipeline.definitions`` or ``workspace.yaml``."""

import dagster as dg

from vidintel.resources import (
    CostControls,
    GpuWorkResource,
    TemporalPluginsResource,
    TranscriptionResource,
    VidintelStorage,
)
from vidintel_pipeline.defs.add_video import add_video_job
from vidintel_pipeline.defs.assets import gpu_analysis, per_video_assets, project_assets, project_costs
from vidintel_pipeline.defs.batch_job import ingest_batch_job
from vidintel_pipeline.defs.jobs import compile_job, cost_report_job, ingest_video_gpu_job, ingest_video_job, search_job
from vidintel_pipeline.defs.sensors import gpu_merge_sensor, new_video_sensor, nightly_rescan, nightly_rescan_gpu
from vidintel_pipeline.runtime import executors

# the project cost report is eager (refreshed after any memory materialization), but Dagster's default automation
# sensor starts off: this one is on by default, so the report is current after sensor and launchpad runs too
costs_automation = dg.AutomationConditionSensorDefinition(
    "costs_automation",
    target=dg.AssetSelection.assets(project_costs),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Refreshes project_costs after videos are ingested, however their runs were started.",
)

defs = dg.Definitions(
    assets=[*per_video_assets, gpu_analysis, project_costs, *project_assets],
    jobs=[
        ingest_video_job,
        ingest_video_gpu_job,
        ingest_batch_job,
        cost_report_job,
        search_job,
        compile_job,
        add_video_job,
    ],
    sensors=[new_video_sensor, gpu_merge_sensor, costs_automation],
    schedules=[nightly_rescan, nightly_rescan_gpu],
    # VIDINTEL_EXECUTOR: multiprocess (default), in_process, celery or k8s (vidintel_pipeline/runtime/executors.py)
    executor=executors.choose(),
    resources={
        "costs": CostControls(),
        "storage": VidintelStorage(),
        "temporal_plugins": TemporalPluginsResource(),
        "transcription": TranscriptionResource(),
        "gpu": GpuWorkResource(),
    },
)
