"""OpenAI's audio transcription API (``whisper-1`` with word timestamps, or the ``gpt-4o`` transcribe models).

* Uploads are limited to 25 MB. Longer audio is split into parts below ``max_upload_mb``, each cut in the
  middle of the quietest 100 ms of the part's second half, so a cut lands in a pause rather than inside a word.
  Parts are sent concurrently (bounded by the provider's token bucket) and their times shifted back.
* ``whisper-1`` is asked for ``verbose_json`` with word and segment timestamps; the ``gpt-4o`` models only
  return text, so each part becomes one timed segment without words.
* The custom vocabulary and the prompt travel in ``prompt`` (the API's way of biasing spelling).
* The key is read from the environment variable named by ``api_key_env`` (``OPENAI_API_KEY``), never from
  options, and is scrubbed from every error message.

Cost: per second of audio at the model's price per minute (``pricebook.json``).
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
import wave
from typing import Any, Optional

import numpy as np
from pydantic import Field

from vidintel_pipeline.plugin_api.cloud import env_secret, http_call, in_thread, rate_limiter
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

NAME = "openai_transcribe"
API_LIMIT_MB = 25.0
WORD_MODELS = ("whisper-1",)
# the API reports Whisper's language *names*; the transcript contract uses ISO codes
LANGUAGE_CODES = {
    "english": "en",
    "german": "de",
    "french": "fr",
    "spanish": "es",
    "italian": "it",
    "portuguese": "pt",
    "dutch": "nl",
    "japanese": "ja",
    "chinese": "zh",
    "korean": "ko",
    "russian": "ru",
    "arabic": "ar",
    "hindi": "hi",
    "polish": "pl",
    "turkish": "tr",
    "swedish": "sv",
    "danish": "da",
    "norwegian": "no",
    "finnish": "fi",
    "czech": "cs",
    "greek": "el",
    "hebrew": "he",
    "ukrainian": "uk",
    "vietnamese": "vi",
}


class OpenAITranscribePlugin(BaseTranscriptionPlugin):
    options: Options  # the instance's validated options (built by the base class)

    class Options(PluginOptions):
        model: str = Field(default="whisper-1", description="whisper-1, gpt-4o-transcribe or gpt-4o-mini-transcribe.")
        base_url: str = Field(default="https://api.openai.com/v1", description="API root; any compatible server works.")
        api_key_env: str = Field(
            default="OPENAI_API_KEY", description="Name of the environment variable holding the key."
        )
        max_upload_mb: float = Field(
            default=24.0, gt=0, le=API_LIMIT_MB, description="Audio is split into parts below this."
        )
        requests_per_second: float = Field(default=2.0, gt=0)
        parallel_parts: int = Field(default=4, ge=1)
        timeout_s: float = Field(default=600.0, gt=0, description="Per upload.")

    def get_plugin_info(self) -> PluginInfo:
        words = self.options.model in WORD_MODELS
        return PluginInfo(
            plugin_name=NAME,
            plugin_version="1.0.0",
            kind="transcription",
            supported_events=["transcription", "language_detection", "custom_vocabulary"]
            + (["word_timestamps"] if words else []),
            cost_per_minute=0.006,
            max_concurrency=self.options.parallel_parts,
            description=f"OpenAI audio transcription ({self.options.model}).",
        )

    def billing_choice(self) -> dict[str, Any]:
        return {"model": self.options.model}

    async def transcribe(self, audio_path: str, config: TranscriptionConfig) -> TranscriptionResult:
        if not os.path.isfile(audio_path):
            raise PluginError(f"{audio_path}: no such file", plugin=NAME)
        o = self.options
        key = env_secret(o.api_key_env, NAME)
        limiter = rate_limiter(f"openai:{o.base_url}", o.requests_per_second, 2)
        gate = asyncio.Semaphore(o.parallel_parts)
        prompt = _prompt(config)
        with tempfile.TemporaryDirectory(prefix="vidintel-openai-") as tmp:
            parts = await in_thread(split_wav, audio_path, int(o.max_upload_mb * 1024 * 1024), tmp)

            async def one(part: tuple[str, float, float]) -> dict[str, Any]:
                async with gate:
                    await limiter.acquire()
                    return await in_thread(self._post, part[0], key, config.language, prompt)

            answers = await asyncio.gather(*(one(p) for p in parts))
        segments: list[TranscriptSegment] = []
        language = None
        for (_path, offset, end), ans in zip(parts, answers, strict=False):
            language = language or ans.get("language")
            segments += self._parse(ans, offset, end)
        lang = LANGUAGE_CODES.get((language or "").lower(), language) if language else config.language
        # beyond the contract's fields: TranscriptionResult keeps extra fields (extra="allow")
        extra: dict[str, Any] = {"parts": len(parts)}
        return TranscriptionResult(
            language=lang,
            duration_s=parts[-1][2] if parts else 0.0,
            segments=segments,
            plugin=NAME,
            model=o.model,
            **extra,
        )

    def _post(self, path: str, key: str, language: Optional[str], prompt: str) -> dict[str, Any]:
        o = self.options
        data: list[tuple[str, str]] = [("model", o.model)]
        if o.model in WORD_MODELS:
            data += [
                ("response_format", "verbose_json"),
                ("timestamp_granularities[]", "word"),
                ("timestamp_granularities[]", "segment"),
            ]
        else:
            data += [("response_format", "json")]
        if language:
            data.append(("language", language))
        if prompt:
            data.append(("prompt", prompt))
        with open(path, "rb") as fh:
            return http_call(
                "POST",
                o.base_url.rstrip("/") + "/audio/transcriptions",
                plugin=NAME,
                what=f"transcribing {os.path.basename(path)}",
                api_key=key,
                timeout_s=o.timeout_s,
                data=data,
                files={"file": (os.path.basename(path), fh, "audio/wav")},
            )

    @staticmethod
    def _parse(ans: dict[str, Any], offset: float, end: float) -> list[TranscriptSegment]:
        words = [
            Word(
                start_s=round(offset + float(w["start"]), 3),
                end_s=round(offset + float(w["end"]), 3),
                word=str(w["word"]).strip(),
                probability=1.0,
            )
            for w in ans.get("words", []) or []
        ]
        raw = ans.get("segments")
        if raw is None:  # text-only models: one segment for the whole part
            text = str(ans.get("text", "")).strip()
            return [TranscriptSegment(start_s=round(offset, 3), end_s=round(end, 3), text=text)] if text else []
        out = []
        for s in raw:
            start, stop = round(offset + float(s["start"]), 3), round(offset + float(s["end"]), 3)
            mine = [w for w in words if start - 0.05 <= (w.start_s + w.end_s) / 2 <= stop + 0.05]
            conf = math.exp(float(s["avg_logprob"])) if "avg_logprob" in s else 1.0
            for w in mine:  # the API gives no per-word probability: use the segment's mean token probability
                w.probability = round(min(1.0, max(0.0, conf)), 4)
            out.append(TranscriptSegment(start_s=start, end_s=stop, text=str(s.get("text", "")).strip(), words=mine))
        return out


def _prompt(config: TranscriptionConfig) -> str:
    parts = [config.prompt or ""]
    if config.vocabulary:
        parts.append("Vocabulary: " + ", ".join(config.vocabulary) + ".")
    return " ".join(p for p in parts if p).strip()[:800]


def split_wav(path: str, max_bytes: int, out_dir: str, window_s: float = 0.1) -> list[tuple[str, float, float]]:
    """``[(file, start_s, end_s)]``: parts of a PCM WAV each under ``max_bytes``, cut at the quietest moment.

    The input itself is returned when it fits.
    """
    try:
        with wave.open(path, "rb") as w:
            rate, width, channels, n = w.getframerate(), w.getsampwidth(), w.getnchannels(), w.getnframes()
            if os.path.getsize(path) <= max_bytes:
                return [(path, 0.0, n / rate)]
            pcm = np.frombuffer(w.readframes(n), dtype=np.int16 if width == 2 else np.uint8)
    except (wave.Error, EOFError) as exc:
        raise PluginError(f"{os.path.basename(path)}: not a PCM WAV file ({exc})", plugin=NAME) from exc
    frame_bytes = width * channels
    per_part = (max_bytes - 1024) // frame_bytes  # room for the header
    if per_part < rate:
        raise PluginError("max_upload_mb too small: a part must hold at least 1 s of audio", plugin=NAME)
    mono = pcm.reshape(-1, channels).astype(np.float32).mean(axis=1) if channels > 1 else pcm.astype(np.float32)
    win, hop = max(1, int(rate * window_s)), max(1, int(rate * 0.01))
    parts, start, i = [], 0, 0
    while start < n:
        end = min(n, start + per_part)
        if end < n:  # cut in the middle of the quietest 100 ms of the part's second half (a pause between words)
            lo = start + per_part // 2
            power = np.concatenate([[0.0], np.cumsum(mono[lo:end].astype(np.float64) ** 2)])
            sums = power[win:] - power[:-win]
            end = lo + int(np.argmin(sums[::hop])) * hop + win // 2
        part = os.path.join(out_dir, f"part{i:03d}.wav")
        with wave.open(part, "wb") as out:
            out.setnchannels(channels)
            out.setsampwidth(width)
            out.setframerate(rate)
            out.writeframes(pcm.reshape(-1, channels)[start:end].tobytes())
        parts.append((part, start / rate, end / rate))
        start, i = end, i + 1
    return parts
