"""Jobs: the main one materializes every per-video asset for one partition."""

import dagster as dg

from .assets import per_video_assets, project_costs
from .partitions import videos_partitions

ingest_video_job = dg.define_asset_job(
    name="ingest_video",
    selection=dg.AssetSelection.assets(*per_video_assets),
    partitions_def=videos_partitions,
    description="Ingest one video end to end: probe, chunk, audio, markers + keyframes, transcript, memory, exports, search index.",
)

cost_report_job = dg.define_asset_job(
    name="cost_report",
    selection=dg.AssetSelection.assets(project_costs),
    description="Refresh the per-project cost report from the ledger.",
)
