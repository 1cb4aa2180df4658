"""The Dagster code location: ``dagster dev -m vidintel_pipeline.definitions`` or ``workspace.yaml``."""

import dagster as dg

from resources import TemporalPluginsResource, TranscriptionResource, VidintelStorage

from .assets import per_video_assets
from .jobs import ingest_video_job

defs = dg.Definitions(
    assets=per_video_assets,
    jobs=[ingest_video_job],
    resources={
        "storage": VidintelStorage(),
        "temporal_plugins": TemporalPluginsResource(),
        "transcription": TranscriptionResource(),
    },
)
