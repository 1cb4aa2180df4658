"""One dynamic partition per video, keyed ``{project_id}__{video_id}``.

A single dynamic dimension avoids the project x video cross product a two-dimensional
``MultiPartitionsDefinition`` would create; the project is recoverable from the key and is also a run tag.
"""

import dagster as dg

from vidintel_pipeline.storage.layout import VideoRef

VIDEOS = "videos"  # the dynamic partitions' name
videos_partitions = dg.DynamicPartitionsDefinition(name=VIDEOS)

PROJECT_TAG = "vidintel/project"
VIDEO_TAG = "vidintel/video"


def run_tags(ref: VideoRef) -> dict[str, str]:
    return {PROJECT_TAG: ref.project_id, VIDEO_TAG: ref.video_id}
