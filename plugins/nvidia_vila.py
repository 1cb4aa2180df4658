"""Vision-language events from any OpenAI-compatible chat endpoint: NVIDIA NIM (VILA), vLLM, OpenAI.

Per chunk, frames are sampled at ``frames_per_minute`` (a density, so a long video gets proportionally more
frames rather than a fixed budget spread thin), from one decode of the chunk, as JPEGs ``frame_width`` wide.
They go to ``/chat/completions`` with the prompt, each image preceded by its time on the source timeline,
at most ``max_frames_per_request`` per request. The model is asked to answer with JSON events::

    {"events": [{"start_s": 12.0, "end_s": 15.5, "type": "action_detection", "label": "a person waves",
                 "confidence": 0.8}]}

and the answer is parsed leniently (code fences and surrounding prose are ignored); events outside the
chunk are clipped, malformed ones dropped and counted. ``requires_gpu`` describes the serving side: this
plugin itself only decodes and uploads.

Cost: the endpoint's price, set in the options (``usd_per_minute`` of video and/or ``usd_per_image``); the
default is the seed's $0.21 per minute from ``pricebook.json``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import re
from typing import Any, Optional

from pydantic import Field

from vidintel_pipeline.costs.pricing import linear_cost, rule_for
from vidintel_pipeline.media.decode import sample_jpegs
from vidintel_pipeline.media.ffmpeg import MediaError
from vidintel_pipeline.plugin_api.cloud import env_secret, http_call, in_thread, rate_limiter
from vidintel_pipeline.plugin_api.contracts import (
    AnalysisConfig,
    BaseTemporalPlugin,
    ChunkInfo,
    PluginError,
    PluginInfo,
    PluginOptions,
    TemporalMarker,
)

NAME = "nvidia_vila"
EVENT_TYPES = ("custom_prompt", "action_detection", "scene_understanding")
DEFAULT_PROMPT = "Describe the notable actions and scenes."
INSTRUCTIONS = (
    "You are given frames of a video, each preceded by its time in seconds. {prompt} "
    'Answer only with JSON of the form {{"events": [{{"start_s": number, "end_s": number, '
    '"type": one of {types}, "label": short text, "confidence": number between 0 and 1}}]}} '
    'using the frame times given. Answer {{"events": []}} if nothing matches.'
)


class NvidiaVilaPlugin(BaseTemporalPlugin):
    options: Options  # the instance's validated options (built by the base class)

    class Options(PluginOptions):
        base_url: str = Field(default="https://integrate.api.nvidia.com/v1", description="OpenAI-compatible API root.")
        model: str = Field(default="nvidia/vila", description="Model name as the endpoint knows it.")
        api_key_env: Optional[str] = Field(
            default="NVIDIA_API_KEY", description="Env var with the key; empty for keyless servers."
        )
        prompt: Optional[str] = Field(default=None, description="Default prompt when the run gives none.")
        frames_per_minute: float = Field(default=12.0, gt=0, le=600)
        max_frames_per_request: int = Field(default=8, ge=1, le=64)
        frame_width: int = Field(default=512, ge=64, le=2048)
        max_chunk_s: float = Field(default=20.0, gt=0, description="The seed's VILA chunk length.")
        max_tokens: int = Field(default=1024, ge=16)
        requests_per_second: float = Field(default=2.0, gt=0)
        max_requests: int = Field(default=4, ge=1, description="Requests in flight.")
        timeout_s: float = Field(default=120.0, gt=0)
        usd_per_minute: Optional[float] = Field(default=None, ge=0, description="Empty: the price book's rate.")
        usd_per_image: float = Field(default=0.0, ge=0)

    def get_plugin_info(self) -> PluginInfo:
        return PluginInfo(
            plugin_name=NAME,
            plugin_version="1.0.0",
            supported_events=list(EVENT_TYPES),
            requires_gpu=True,
            max_chunk_duration=self.options.max_chunk_s,
            cost_per_minute=self._rate(),
            max_concurrency=self.options.max_requests,
            description=f"Vision-language model {self.options.model} behind an OpenAI-compatible endpoint.",
        )

    def _rate(self) -> float:
        if self.options.usd_per_minute is not None:
            return self.options.usd_per_minute
        rule = rule_for(self)
        return rule.rate() if rule else 0.0

    def frame_count(self, duration_s: float) -> int:
        return 0 if duration_s <= 0 else max(1, math.ceil(duration_s * self.options.frames_per_minute / 60.0 - 1e-9))

    def estimate_cost(self, duration_seconds: float) -> float:
        return round(
            linear_cost(duration_seconds, self._rate())
            + self.frame_count(duration_seconds) * self.options.usd_per_image,
            6,
        )

    async def detect_markers(self, chunk: ChunkInfo, config: AnalysisConfig) -> list[TemporalMarker]:
        o = self.options
        if not os.path.isfile(chunk.path):
            raise PluginError(f"{chunk.path}: no such file", plugin=NAME)
        key = env_secret(o.api_key_env, NAME) if o.api_key_env else None
        n = self.frame_count(chunk.duration_s)
        step = chunk.duration_s / n
        times = [chunk.start_s + (k + 0.5) * step for k in range(n)]
        try:
            frames = await in_thread(sample_jpegs, chunk.path, times, time_offset=chunk.start_s, width=o.frame_width)
        except MediaError as exc:
            raise PluginError(str(exc), plugin=NAME) from exc
        if not frames:
            return []
        prompt = config.prompt or o.prompt or DEFAULT_PROMPT
        limiter = rate_limiter(f"openai-compatible:{o.base_url}", o.requests_per_second, 2)
        batches = [frames[i : i + o.max_frames_per_request] for i in range(0, len(frames), o.max_frames_per_request)]

        async def ask(batch: list[tuple[float, bytes]]) -> list[TemporalMarker]:
            await limiter.acquire()
            body = self.request(batch, prompt)
            ans = await in_thread(
                http_call,
                "POST",
                o.base_url.rstrip("/") + "/chat/completions",
                plugin=NAME,
                what=f"asking {o.model} about {chunk.video_id} {batch[0][0]:.1f}-{batch[-1][0]:.1f} s",
                api_key=key,
                timeout_s=o.timeout_s,
                json_body=body,
            )
            return self.parse(ans, chunk, prompt)

        outs = await asyncio.gather(*(ask(b) for b in batches))
        markers = [m for out in outs for m in out]
        markers.sort(key=lambda m: (m.start_s, m.end_s, m.label))
        return markers

    def request(self, frames: list[tuple[float, bytes]], prompt: str) -> dict[str, Any]:
        content: list[dict[str, Any]] = [
            {"type": "text", "text": INSTRUCTIONS.format(prompt=prompt, types=list(EVENT_TYPES))}
        ]
        for t, jpeg in frames:
            content.append({"type": "text", "text": f"Frame at {t:.2f} s:"})
            content.append(
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()}}
            )
        return {
            "model": self.options.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.options.max_tokens,
            "temperature": 0.0,
        }

    @staticmethod
    def parse(answer: dict[str, Any], chunk: ChunkInfo, prompt: str) -> list[TemporalMarker]:
        try:
            text = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise PluginError(
                f"endpoint answer has no choices[0].message.content: {str(answer)[:200]}", plugin=NAME
            ) from exc
        if isinstance(text, list):  # some servers return content parts
            text = " ".join(p.get("text", "") for p in text if isinstance(p, dict))
        events = _json_events(text)
        if events is None:
            raise PluginError(f"the model did not answer with the JSON asked for: {text[:200]!r}", plugin=NAME)
        out, dropped = [], 0
        for e in events:
            try:
                start = max(chunk.start_s, float(e["start_s"]))
                end = min(chunk.end_s, max(start, float(e.get("end_s", start))))
                if start > chunk.end_s:
                    raise ValueError("after the chunk")
                kind = e["type"] if e.get("type") in EVENT_TYPES else "custom_prompt"
                conf = min(1.0, max(0.0, float(e.get("confidence", 0.5))))
                label = str(e["label"]).strip()[:200]
                if not label:
                    raise ValueError("empty label")
            except (KeyError, TypeError, ValueError):
                dropped += 1
                continue
            out.append(
                TemporalMarker(
                    type=kind,
                    start_s=round(start, 3),
                    end_s=round(end, 3),
                    label=label,
                    confidence=round(conf, 3),
                    plugin=NAME,
                    attributes={"prompt": prompt},
                )
            )
        if dropped:
            for m in out:
                m.attributes["dropped_events"] = dropped
        return out


def _json_events(text: str) -> Optional[list[dict]]:
    """The ``events`` list from a model's answer, tolerating code fences and prose around the JSON."""
    text = re.sub(r"```(?:json)?", "", text or "")
    start = text.find("{")
    while start != -1:
        depth = 0
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                try:
                    doc = json.loads(text[start : i + 1])
                except ValueError:
                    break
                if isinstance(doc, dict) and isinstance(doc.get("events"), list):
                    return [e for e in doc["events"] if isinstance(e, dict)]
                break
        start = text.find("{", start + 1)
    return None
