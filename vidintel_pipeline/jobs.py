"""Jobs: the main one materializes every per-video asset for one partition."""

import dagster as dg

from .assets import per_video_assets
from .partitions import videos_partitions

ingest_video_job = dg.define_asset_job(
    name="ingest_video",
    selection=dg.AssetSelection.assets(*per_video_assets),
    partitions_def=videos_partitions,
    description="Ingest one video end to end: probe, chunk, audio, markers + keyframes, transcript, memory.",
)
