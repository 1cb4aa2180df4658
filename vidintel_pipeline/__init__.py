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
    "TemporalMarkerRegistry": "registry", "PluginRegistry": "registry",
    "BaseTemporalPlugin": "contracts", "BaseTranscriptionPlugin": "contracts", "BaseDiarizationPlugin": "contracts",
    "PluginError": "contracts", "RateLimitError": "contracts", "PluginInfo": "contracts", "PluginOptions": "contracts",
    "ChunkInfo": "contracts", "AnalysisConfig": "contracts", "TemporalMarker": "contracts",
    "TranscriptionConfig": "contracts", "TranscriptionResult": "contracts", "TranscriptSegment": "contracts",
    "Word": "contracts", "IngestionPhase": "contracts", "MemoryDocument": "contracts", "MARKER_TYPES": "contracts",
    "FramePlugin": "frame_plugins",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vidintel_pipeline' has no attribute {name!r}")
