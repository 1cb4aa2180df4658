"""Silence from the one extracted 16 kHz audio track (no decode of its own).

Loudness in 50 ms windows; a stretch quieter than ``threshold_db`` (dBFS) for at least
``min_duration_s`` is a ``silence`` technical cue.
"""

from __future__ import annotations

import asyncio

import numpy as np

from vidintel_pipeline.media.audio import read_wav
from vidintel_pipeline.plugin_api.contracts import (
    AnalysisConfig,
    BaseTemporalPlugin,
    ChunkInfo,
    PluginError,
    PluginInfo,
    PluginOptions,
    TemporalMarker,
)


class SilenceOptions(PluginOptions):
    threshold_db: float = -45.0
    min_duration_s: float = 1.0
    window_s: float = 0.05


class LocalSilencePlugin(BaseTemporalPlugin):
    Options = SilenceOptions
    options: SilenceOptions  # the instance's validated options (built by the base class from Options)

    def get_plugin_info(self) -> PluginInfo:
        return PluginInfo(
            plugin_name="local_silence",
            plugin_version="1.0.0",
            supported_events=["technical_cue", "silence"],
            description="Silent stretches in the extracted audio (CPU, no network).",
        )

    async def detect_markers(self, chunk: ChunkInfo, config: AnalysisConfig) -> list[TemporalMarker]:
        if not chunk.audio_path:
            return []  # no audio track: nothing to report, not an error
        return await asyncio.to_thread(self._detect, chunk)

    def _detect(self, chunk: ChunkInfo) -> list[TemporalMarker]:
        if chunk.audio_path is None:
            return []  # no audio track: nothing can be silent
        try:
            x, rate = read_wav(chunk.audio_path)
        except (OSError, ValueError, EOFError) as exc:
            raise PluginError(f"cannot read audio {chunk.audio_path}: {exc}", plugin="local_silence") from exc
        lo, hi = int(chunk.start_s * rate), int(chunk.end_s * rate)
        x = x[lo:hi]
        win = max(1, int(self.options.window_s * rate))
        n = len(x) // win
        if n == 0:
            return []
        rms = np.sqrt(np.mean(x[: n * win].reshape(n, win) ** 2, axis=1) + 1e-12)
        quiet = 20 * np.log10(rms) < self.options.threshold_db
        markers = []
        i = 0
        while i < n:
            if not quiet[i]:
                i += 1
                continue
            j = i
            while j < n and quiet[j]:
                j += 1
            start, end = chunk.start_s + i * win / rate, chunk.start_s + j * win / rate
            if j == n:
                end = chunk.end_s
            if end - start >= self.options.min_duration_s:
                markers.append(
                    TemporalMarker(
                        type="technical_cue",
                        start_s=round(start, 3),
                        end_s=round(end, 3),
                        label="silence",
                        confidence=0.9,
                        plugin="local_silence",
                        attributes={"threshold_db": self.options.threshold_db},
                    )
                )
            i = j
        return markers
