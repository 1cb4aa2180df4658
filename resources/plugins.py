"""Which plugins run, with which options: resources a user can change per run in the launchpad."""

from __future__ import annotations

from typing import Any, Optional

import dagster as dg
from pydantic import Field

from vidintel_pipeline.contracts import BaseTemporalPlugin, BaseTranscriptionPlugin, PluginError, TranscriptionConfig
from vidintel_pipeline.registry import PluginRegistry

DEFAULT_TEMPORAL = ["local_shots", "local_technical_cues", "opencv_faces", "local_silence"]


class _PluginsBase(dg.ConfigurableResource):
    plugin_paths: list[str] = Field(default_factory=list, description="Extra plugin folders (besides plugins/ and VIDINTEL_PLUGIN_PATH).")

    def registry(self) -> PluginRegistry:
        return PluginRegistry.default(extra_paths=self.plugin_paths)


class TemporalPluginsResource(_PluginsBase):
    """Temporal marker plugins to run, by name, and their options (``{plugin_name: {option: value}}``)."""

    plugins: list[str] = Field(default_factory=lambda: list(DEFAULT_TEMPORAL))
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    default_chunk_s: float = Field(default=120.0, gt=0, description="Chunk length when no plugin sets a limit.")
    min_confidence: float = Field(default=0.0, ge=0, le=1)
    prompt: Optional[str] = Field(default=None, description="Prompt for custom_prompt plugins.")

    def create(self) -> list[BaseTemporalPlugin]:
        reg = self.registry()
        unknown = set(self.options) - set(self.plugins)
        if unknown:
            raise PluginError(f"options given for plugins that are not selected: {sorted(unknown)}")
        out = []
        for name in self.plugins:
            plugin = reg.get_plugin(name, **self.options.get(name, {}))
            if not isinstance(plugin, BaseTemporalPlugin):
                raise PluginError(f"{name!r} is a transcription plugin; list it under the transcription resource")
            out.append(plugin)
        return out


class TranscriptionResource(_PluginsBase):
    """The transcription plugin and the per-run transcription settings."""

    enabled: bool = True
    plugin: str = "faster_whisper"
    options: dict[str, Any] = Field(default_factory=dict)
    language: Optional[str] = Field(default=None, description="ISO language code; empty detects it.")
    vocabulary: list[str] = Field(default_factory=list, description="Names and terms to favour.")
    prompt: Optional[str] = None

    def create(self) -> BaseTranscriptionPlugin:
        plugin = self.registry().get_plugin(self.plugin, **self.options)
        if not isinstance(plugin, BaseTranscriptionPlugin):
            raise PluginError(f"{self.plugin!r} is not a transcription plugin")
        return plugin

    def config(self) -> TranscriptionConfig:
        return TranscriptionConfig(language=self.language, vocabulary=self.vocabulary, prompt=self.prompt)
