"""Base class for visual detectors that consume the shared frame stream.

A frame plugin is a :class:`~vidintel_pipeline.plugin_api.contracts.BaseTemporalPlugin` whose work is split the way
PySceneDetect splits a detector: :meth:`begin` once per chunk, :meth:`process` for each decoded frame,
:meth:`end` to emit markers. The orchestrator decodes a video once and feeds every enabled frame plugin
from that one decode; calling :meth:`detect_markers` directly decodes the chunk for this plugin alone.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from typing import Optional

from vidintel_pipeline.media.decode import run_frame_pipeline
from vidintel_pipeline.media.ffmpeg import MediaError
from vidintel_pipeline.media.frames import Frame
from vidintel_pipeline.plugin_api.contracts import (
    AnalysisConfig,
    BaseTemporalPlugin,
    ChunkInfo,
    PluginError,
    TemporalMarker,
)


class FramePlugin(BaseTemporalPlugin):
    chunk: Optional[ChunkInfo] = None
    config: Optional[AnalysisConfig] = None

    @property
    def segment_context_s(self) -> Optional[float]:
        """Seconds of frames on each side of a moment that this detector needs to judge it (its longest window).

        Set it (a class attribute, or a property computed from the options), and a long video may be decoded in
        parallel time segments, each with its own copy of the plugin and this much overlap (see
        :mod:`vidintel_pipeline.engine.segments`); the copy must pickle. None: the plugin must see the whole
        video in one stream, and the video is decoded in one pass.
        """
        return None

    def begin(self, chunk: ChunkInfo, config: AnalysisConfig) -> None:
        """Reset per-chunk state. Override to add your own, and call ``super().begin``."""
        self.chunk = chunk
        self.config = config

    @abstractmethod
    def process(self, frame: Frame) -> None:
        """Look at one frame (frames arrive in presentation order)."""

    @abstractmethod
    def end(self) -> list[TemporalMarker]:
        """All markers for the chunk, on the source timeline."""

    async def detect_markers(self, chunk: ChunkInfo, config: AnalysisConfig) -> list[TemporalMarker]:
        def work() -> list[TemporalMarker]:
            self.begin(chunk, config)
            try:
                run_frame_pipeline(chunk.path, [self], time_offset=chunk.start_s)
            except MediaError as exc:
                raise PluginError(str(exc), plugin=self.name) from exc
            return self.end()

        return await asyncio.to_thread(work)
