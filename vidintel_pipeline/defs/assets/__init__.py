"""The assets, one module per group: ingestion, analysis (pictures: visual.py; speech and prompts; GPU), outputs,
costs and on-request project outputs."""

from vidintel_pipeline.defs.assets.analysis import derived_markers, transcript
from vidintel_pipeline.defs.assets.costs import project_costs
from vidintel_pipeline.defs.assets.gpu import gpu_analysis
from vidintel_pipeline.defs.assets.ingestion import audio, source_video, video_chunks
from vidintel_pipeline.defs.assets.outputs import exports, memory, search_index
from vidintel_pipeline.defs.assets.requests import compilation, search_results
from vidintel_pipeline.defs.assets.visual import visual_analysis

# the per-video chain, in order; the GPU step and the project-level assets are listed on their own
per_video_assets = [
    source_video,
    video_chunks,
    audio,
    visual_analysis,
    transcript,
    derived_markers,
    memory,
    exports,
    search_index,
]
# what a video's memory feeds: rebuilt after gpu_analysis lands (gpu_merge_sensor), left out of the GPU job
memory_and_after = [memory, exports, search_index]
project_assets = [search_results, compilation]

__all__ = [
    "audio",
    "compilation",
    "exports",
    "gpu_analysis",
    "memory",
    "memory_and_after",
    "per_video_assets",
    "project_assets",
    "project_costs",
    "derived_markers",
    "search_index",
    "search_results",
    "source_video",
    "transcript",
    "video_chunks",
    "visual_analysis",
]
