"""The Dagster code location: ``dagster dev -m vidintel_pipeline.definitions`` or ``workspace.yaml``."""

import dagster as dg

from resources import CostControls, TemporalPluginsResource, TranscriptionResource, VidintelStorage

from .assets import per_video_assets, project_costs
from .jobs import cost_report_job, ingest_video_job

defs = dg.Definitions(
    assets=[*per_video_assets, project_costs],
    jobs=[ingest_video_job, cost_report_job],
    resources={
        "costs": CostControls(),
        "storage": VidintelStorage(),
        "temporal_plugins": TemporalPluginsResource(),
        "transcription": TranscriptionResource(),
    },
)
