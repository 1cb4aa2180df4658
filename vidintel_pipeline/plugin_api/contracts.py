"""The contracts every plugin and every consumer of vidintel's output relies on.

These follow the seed architecture (``shared/design/plugin-system-architecture.md``): temporal marker
plugins implement ``get_plugin_info`` and async ``detect_markers(chunk, config)``; transcription plugins
implement async ``transcribe(audio_path, config)``. Field names of :class:`TemporalMarker`,
:class:`TranscriptionResult` and the memory document are a public contract: add fields, never rename.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from enum import Enum
from typing import Any, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# Marker types are open: these core types have their documented meaning everywhere; a plugin may emit any
# other snake_case type it declares in its ``supported_events`` (``logo_appearance``, ``speaker_change``), which
# memory, exports, search and reels carry as they are. An undeclared type is dropped with its reason.
MarkerType = str
MARKER_TYPE_RE = r"^[a-z][a-z0-9_]{0,63}$"
MARKER_TYPES: tuple[str, ...] = (
    "shot_boundary",
    "scene_change",
    "technical_cue",
    "object_appearance",
    "custom_prompt",
    "action_detection",
    "scene_understanding",
    "text_in_video",
)

PLUGIN_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


class PluginError(Exception):
    """A plugin could not do its work. Raised for anything a caller may want to fall back from.

    ``retryable`` tells the orchestrator whether trying again later may succeed (timeouts, throttling).
    """

    def __init__(self, message: str, *, plugin: str | None = None, retryable: bool = False):
        self.plugin = plugin
        self.retryable = retryable
        super().__init__(f"[{plugin}] {message}" if plugin else message)


class RateLimitError(PluginError):
    """The provider throttled us: worth retrying after a backoff."""

    def __init__(self, message: str, *, plugin: str | None = None):
        super().__init__(message, plugin=plugin, retryable=True)


class IngestionPhase(str, Enum):
    """Progress phases from the seed, reported in run logs and to CLI progress listeners."""

    INITIALIZING = "initializing"
    CHUNKING = "chunking"
    ANALYZING_TEMPORAL = "analyzing_temporal"
    TRANSCRIBING_AUDIO = "transcribing_audio"
    BUILDING_MEMORY = "building_memory"
    FINALIZING = "finalizing"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PluginInfo(_Model):
    """What a plugin can do and what it costs. The registry selects plugins on these fields."""

    plugin_name: str
    plugin_version: str
    kind: Literal["temporal", "transcription", "diarization"] = "temporal"
    supported_events: list[str] = Field(
        default_factory=list, description="Capabilities, e.g. shot_detection, black_frames."
    )
    requires_gpu: bool = False
    requires_s3: bool = False
    max_chunk_duration: Optional[float] = Field(default=None, gt=0, description="Seconds; None means whole videos.")
    cost_per_minute: float = Field(default=0.0, ge=0, description="USD per minute of media processed.")
    max_concurrency: int = Field(default=4, ge=1, description="Requests this provider may serve at once.")
    accuracy: dict[str, float] = Field(
        default_factory=dict, description="Benchmark-backed score in [0, 1] per capability (F1 or recall)."
    )
    accuracy_source: str = Field(default="", description="Where the accuracy figures were measured.")
    description: str = ""
    uses_results: bool = Field(
        default=False,
        description="Reads other plugins' results (ChunkInfo.markers, .transcript, .keyframes) instead of the media: "
        "runs in the derived_markers step, after every other temporal plugin and the transcript.",
    )

    @field_validator("accuracy")
    @classmethod
    def _acc(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: s for k, s in v.items() if not 0 <= s <= 1}
        if bad:
            raise ValueError(f"accuracy scores must lie in [0, 1]: {bad}")
        return v

    @field_validator("plugin_name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not PLUGIN_NAME_RE.fullmatch(v):
            raise ValueError(f"plugin_name {v!r} must match {PLUGIN_NAME_RE.pattern}")
        return v


class ChunkInfo(_Model):
    """A time range of one video handed to a temporal plugin.

    ``path`` is a media file whose own timeline starts at ``start_s`` of the source video (a stream-copied
    chunk, or the source itself with ``start_s == 0``). Markers are reported on the *source* timeline.
    """

    project_id: str
    video_id: str
    index: int = 0
    path: str
    uri: Optional[str] = Field(default=None, description="Where the chunk lives in storage (s3://... for S3 plugins).")
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    fps: Optional[float] = None
    width: Optional[int] = None
    height: Optional[int] = None
    audio_path: Optional[str] = Field(default=None, description="16 kHz mono WAV of the whole video, when extracted.")
    # set only for plugins whose info says uses_results
    markers: list["TemporalMarker"] = Field(default_factory=list, description="Markers the other plugins found.")
    transcript: Optional["TranscriptionResult"] = Field(default=None, description="The video's transcript.")
    keyframes: list["Keyframe"] = Field(
        default_factory=list, description="Each shot's keyframe, its JPEG on local disk at Keyframe.path."
    )

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @model_validator(mode="after")
    def _order(self) -> "ChunkInfo":
        if self.end_s < self.start_s:
            raise ValueError("chunk end_s precedes start_s")
        return self


class AnalysisConfig(_Model):
    """Per-run settings shared by all temporal plugins."""

    project_id: str = ""
    video_id: str = ""
    prompt: Optional[str] = Field(default=None, description="Text prompt for custom_prompt plugins.")
    min_confidence: float = Field(default=0.0, ge=0, le=1)


class TemporalMarker(_Model):
    """One interesting time range. A hard cut has ``start_s == end_s`` == first frame of the new shot.

    Times are not range-checked here, so a plugin that computes a start half a frame before 0 can still build
    its markers: the core clamps each marker into its chunk, or drops that one alone
    (``vidintel_pipeline.engine.merge.check_markers``).
    """

    model_config = ConfigDict(extra="allow")

    type: MarkerType = Field(pattern=MARKER_TYPE_RE)
    start_s: float
    end_s: float
    label: str
    confidence: float = Field(ge=0, le=1)
    plugin: str
    attributes: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _order(self) -> "TemporalMarker":
        if self.end_s < self.start_s:
            raise ValueError(f"marker end_s {self.end_s} precedes start_s {self.start_s}")
        return self


class TranscriptionConfig(_Model):
    """Per-run transcription settings."""

    language: Optional[str] = Field(default=None, description="ISO code; None detects the language.")
    vocabulary: list[str] = Field(default_factory=list, description="Custom vocabulary: names and terms to favour.")
    prompt: Optional[str] = Field(default=None, description="Initial prompt (style, context).")
    word_timestamps: bool = True
    vad: bool = True
    diarization: bool = False
    # where the audio comes from: cloud plugins use these to stage it under the video's own prefix
    project_id: Optional[str] = None
    video_id: Optional[str] = None
    audio_uri: Optional[str] = Field(default=None, description="The audio's storage URI (s3://... on S3 storage).")


class Word(_Model):
    start_s: float
    end_s: float
    word: str
    probability: float = Field(ge=0, le=1)
    speaker: Optional[str] = None


class TranscriptSegment(_Model):
    start_s: float
    end_s: float
    text: str
    speaker: Optional[str] = None
    words: list[Word] = Field(default_factory=list)


class TranscriptionResult(_Model):
    model_config = ConfigDict(extra="allow")

    language: Optional[str] = None
    language_probability: Optional[float] = None
    duration_s: float = 0.0
    segments: list[TranscriptSegment] = Field(default_factory=list)
    plugin: str = ""
    model: str = ""

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments).strip()

    @property
    def word_count(self) -> int:
        return sum(len(s.words) for s in self.segments)


class PluginOptions(_Model):
    """Base of every plugin's typed options. Unknown options are an error, not silently ignored."""


class _PluginBase(ABC):
    Options: ClassVar[type[PluginOptions]] = PluginOptions

    def __init__(self, **options: Any):
        # Keep constructors cheap all the same (load models on first use): selection builds the chosen plugins.
        try:
            self.options = self.Options(**options)
        except ValidationError as exc:
            raise PluginError(f"invalid options: {exc}", plugin=type(self).__name__) from exc

    @abstractmethod
    def get_plugin_info(self) -> PluginInfo | dict[str, Any]:
        """Plugin capabilities and metadata."""

    @property
    def info(self) -> PluginInfo:
        raw = self.get_plugin_info()
        return raw if isinstance(raw, PluginInfo) else PluginInfo.model_validate(raw)

    @classmethod
    def describe(cls) -> PluginInfo:
        """The info of the plugin with its default options, read without constructing it.

        Discovery and listing call this, so a plugin's ``__init__`` (which may want credentials or a model) runs
        only for plugins a run selects. ``get_plugin_info`` sees a bare instance whose ``options`` are the
        defaults; one that reads other state set in ``__init__`` is constructed after all.
        """
        bare = cls.__new__(cls)
        bare.options = cls.Options()
        try:
            return bare.info
        except AttributeError:
            return cls().info

    @property
    def name(self) -> str:
        return self.info.plugin_name

    def estimate_cost(self, duration_seconds: float) -> float:
        """USD for one request covering ``duration_seconds`` of media.

        Uses the provider's rule from the price book (rounding, minimums, per-feature prices) when there is
        one, else the declared ``cost_per_minute`` billed per second. Override :meth:`billing_choice` to tell
        the price book which features or model this instance uses.
        """
        from vidintel_pipeline.costs.pricing import linear_cost, rule_for

        rule = rule_for(self)
        if rule is None:
            return linear_cost(duration_seconds, self.info.cost_per_minute)
        return rule.cost(duration_seconds, **self.billing_choice())

    def billing_choice(self) -> dict[str, Any]:
        """``{"features": [...]}`` or ``{"model": ...}`` for the price book; empty means its defaults."""
        return {}


class BaseTemporalPlugin(_PluginBase):
    """Finds timestamps in a video chunk."""

    @abstractmethod
    async def detect_markers(self, chunk: ChunkInfo, config: AnalysisConfig) -> list[TemporalMarker]:
        """Detect markers in a video chunk, on the source video's timeline."""


class BaseTranscriptionPlugin(_PluginBase):
    """Turns audio into timed text."""

    @abstractmethod
    async def transcribe(self, audio_path: str, config: TranscriptionConfig) -> TranscriptionResult:
        """Transcribe an audio file."""

    def transcribe_sync(self, audio_path: str, config: TranscriptionConfig) -> TranscriptionResult:
        return asyncio.run(self.transcribe(audio_path, config))


class SpeakerTurn(_Model):
    """Who spoke when: a diarization plugin's answer, merged into transcript words and segments."""

    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    speaker: str


class BaseDiarizationPlugin(_PluginBase):
    """Speaker diarization: ``diarize(audio_path)`` gives speaker turns; labels are opaque but consistent."""

    @abstractmethod
    async def diarize(self, audio_path: str) -> list[SpeakerTurn]:
        """Turns on the audio's timeline, sorted by start. Raise :class:`PluginError` on failure."""


class Keyframe(_Model):
    time_s: float
    uri: str
    shot_index: Optional[int] = None
    sharpness: Optional[float] = None
    path: Optional[str] = Field(
        default=None, exclude=True, description="Local copy of the JPEG (set for uses_results plugins; never stored)."
    )


ChunkInfo.model_rebuild()  # its markers, transcript and keyframes fields refer to the classes above


class Scene(_Model):
    """One scene: a run of shots at one place and time, from one scene_change marker (or the start) to the next."""

    index: int
    start_s: float
    end_s: float
    shots: int = Field(description="Shot boundaries inside it, plus one.")
    why: str = Field(default="", description="Why the scene_change that opens it was called (empty for the first).")

    @staticmethod
    def from_markers(markers: list["TemporalMarker"], duration_s: float) -> list["Scene"]:
        changes = sorted(
            (m for m in markers if m.type == "scene_change"), key=lambda m: m.attributes.get("starts_at_s", m.start_s)
        )
        if not changes:
            return []
        starts = [(0.0, "")] + [(float(m.attributes.get("starts_at_s", m.start_s)), str(m.attributes.get("why", "")))
                                for m in changes]  # fmt: skip
        cuts = [m.start_s for m in markers if m.type == "shot_boundary"]
        out = []
        for i, (start, why) in enumerate(starts):
            end = starts[i + 1][0] if i + 1 < len(starts) else duration_s
            inside = sum(1 for c in cuts if start + 1e-3 < c < end - 1e-3)
            out.append(
                Scene(index=i, start_s=round(start, 6), end_s=round(max(start, end), 6), shots=inside + 1, why=why)
            )
        return out


class CostSummary(_Model):
    total_usd: float = 0.0
    by_plugin: dict[str, float] = Field(default_factory=dict)


class MemoryDocument(_Model):
    """The public output contract: one merged, searchable timeline per video."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = 1
    project_id: str
    video_id: str
    duration_s: float
    source: dict[str, Any] = Field(default_factory=dict)
    markers: list[TemporalMarker] = Field(default_factory=list)
    transcript: TranscriptionResult = Field(default_factory=TranscriptionResult)
    keyframes: list[Keyframe] = Field(default_factory=list)
    scenes: list[Scene] = Field(
        default_factory=list, description="The scenes between scene_change markers; empty when none was marked."
    )
    cost: CostSummary = Field(default_factory=CostSummary)
    plugins: list[dict[str, str]] = Field(default_factory=list)
    warnings: list[str] = Field(
        default_factory=list,
        description="What a user must know: failed plugins, clamped or dropped markers, a truncated or damaged source.",
    )
