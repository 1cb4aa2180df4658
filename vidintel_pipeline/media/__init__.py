"""Media tools: probing, chunking by stream copy, audio extraction and the shared frame stream."""

from vidintel_pipeline.media.ffmpeg import MediaError, ffmpeg_exe, run_ffmpeg
from vidintel_pipeline.media.probe import VideoProbe, probe

__all__ = ["MediaError", "VideoProbe", "ffmpeg_exe", "probe", "run_ffmpeg"]
