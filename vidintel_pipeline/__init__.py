"""vidintel: video intelligence pipeline on Dagster.

The names the architecture document uses are importable from here::

    from vidintel_pipeline import TemporalMarkerRegistry, BaseTemporalPlugin, TemporalMarker, ...

They load on first use, so ``import vidintel_pipeline`` stays cheap. The Dagster code location is
:mod:`vidintel_pipeline.definitions`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "TemporalMarkerRegistry": "plugin_api.registry",
    "PluginRegistry": "plugin_api.registry",
    "BaseTemporalPlugin": "plugin_api.contracts",
    "BaseTranscriptionPlugin": "plugin_api.contracts",
    "BaseDiarizationPlugin": "plugin_api.contracts",
    "PluginError": "plugin_api.contracts",
    "RateLimitError": "plugin_api.contracts",
    "PluginInfo": "plugin_api.contracts",
    "PluginOptions": "plugin_api.contracts",
    "ChunkInfo": "plugin_api.contracts",
    "AnalysisConfig": "plugin_api.contracts",
    "TemporalMarker": "plugin_api.contracts",
    "TranscriptionConfig": "plugin_api.contracts",
    "TranscriptionResult": "plugin_api.contracts",
    "TranscriptSegment": "plugin_api.contracts",
    "Word": "plugin_api.contracts",
    "IngestionPhase": "plugin_api.contracts",
    "MemoryDocument": "plugin_api.contracts",
    "MARKER_TYPES": "plugin_api.contracts",
    "FramePlugin": "plugin_api.frame_plugin",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vidintel_pipeline' has no attribute {name!r}")
