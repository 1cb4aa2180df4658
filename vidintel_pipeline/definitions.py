"""The Dagster code location: ``dagster dev -m vidintel_pipeline.definitions`` or ``workspace.yaml``."""

import dagster as dg

from resources import CostControls, TemporalPluginsResource, TranscriptionResource, VidintelStorage

from .assets import per_video_assets, project_costs
from .jobs import cost_report_job, ingest_video_job
from .sensors import new_video_sensor, nightly_rescan

defs = dg.Definitions(
    assets=[*per_video_assets, project_costs],
    jobs=[ingest_video_job, cost_report_job],
    sensors=[new_video_sensor],
    schedules=[nightly_rescan],
    resources={
        "costs": CostControls(),
        "storage": VidintelStorage(),
        "temporal_plugins": TemporalPluginsResource(),
        "transcription": TranscriptionResource(),
    },
)
