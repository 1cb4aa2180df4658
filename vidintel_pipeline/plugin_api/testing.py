"""The plugin contract kit: checks any plugin author runs against their plugin.

    from vidintel_pipeline.plugin_api.testing import check_temporal_plugin, check_transcription_plugin

    def test_my_plugin(tmp_path):
        check_temporal_plugin(MyPlugin(), media_path="clip.mp4", duration_s=12.0)

Each check raises ``AssertionError`` with a message saying which rule was broken: info valid, markers
within the chunk, sorted, confidence in [0, 1], cost estimate consistent (non-negative, $0 for nothing,
never decreasing with duration), and failures raised as ``PluginError``. All built-in plugins pass it
(``tests/plugin_api/test_contract_kit.py``).
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
from typing import Any, Optional

from vidintel_pipeline.plugin_api.contracts import (
    MARKER_TYPES,
    AnalysisConfig,
    BaseTemporalPlugin,
    BaseTranscriptionPlugin,
    ChunkInfo,
    PluginError,
    PluginInfo,
    TemporalMarker,
    TranscriptionConfig,
    TranscriptionResult,
)


def check_plugin_info(plugin: Any) -> PluginInfo:
    raw = plugin.get_plugin_info()
    info = raw if isinstance(raw, PluginInfo) else PluginInfo.model_validate(raw)
    assert info.plugin_version, "plugin_version must be set"
    assert info.supported_events, "supported_events must list at least one capability"
    expected = "transcription" if isinstance(plugin, BaseTranscriptionPlugin) else "temporal"
    assert plugin.info.kind == expected or info.kind == expected, f"kind should be {expected!r}"
    if info.accuracy:
        assert info.accuracy_source, "accuracy figures need an accuracy_source saying where they were measured"
    return info


def check_cost_estimate(
    plugin: Any, durations: tuple[float, ...] = (0.0, 1.0, 14.0, 59.5, 60.0, 61.0, 600.0, 3600.0)
) -> None:
    costs = [plugin.estimate_cost(d) for d in durations]
    for d, c in zip(durations, costs, strict=False):
        assert isinstance(c, float) and math.isfinite(c) and c >= 0, (
            f"estimate_cost({d}) = {c!r}: must be a finite USD >= 0"
        )
    assert costs[0] == 0.0, f"estimate_cost(0) must be 0, got {costs[0]}"
    assert all(a <= b + 1e-12 for a, b in zip(costs, costs[1:], strict=False)), (
        f"estimate_cost must not fall as duration grows: {costs}"
    )
    if plugin.info.cost_per_minute == 0 and not _priced(plugin):
        assert max(costs) == 0.0, "a plugin that declares $0/min must estimate $0"


def _priced(plugin: Any) -> bool:
    from vidintel_pipeline.costs.pricing import rule_for

    return rule_for(plugin) is not None


def check_markers(
    markers: list[Any], chunk: ChunkInfo, plugin_name: str, declared: tuple[str, ...] = ()
) -> list[TemporalMarker]:
    out = [m if isinstance(m, TemporalMarker) else TemporalMarker.model_validate(m) for m in markers]
    for m in out:
        assert m.type in MARKER_TYPES or m.type in declared, (
            f"marker type {m.type!r} is neither a core type nor declared in supported_events {list(declared)}"
        )
        assert 0.0 <= m.confidence <= 1.0, f"confidence {m.confidence} outside [0, 1]"
        assert chunk.start_s - 0.1 <= m.start_s <= m.end_s <= chunk.end_s + 0.1, (
            f"marker {m.label} {m.start_s}-{m.end_s} outside chunk {chunk.start_s}-{chunk.end_s}"
        )
        assert m.plugin == plugin_name, f"marker.plugin is {m.plugin!r}, expected {plugin_name!r}"
        assert m.label, "every marker needs a label"
    starts = [m.start_s for m in out]
    assert starts == sorted(starts), "markers must be sorted by start_s"
    return out


def check_temporal_plugin(
    plugin: BaseTemporalPlugin,
    *,
    media_path: str,
    duration_s: float,
    audio_path: Optional[str] = None,
    config: Optional[AnalysisConfig] = None,
    markers: Optional[list[TemporalMarker]] = None,
    transcript: Optional[Any] = None,
) -> list[TemporalMarker]:
    """Run every rule against ``plugin`` on one chunk spanning ``media_path``; returns its markers.

    Plugins that read results (``uses_results``) get ``markers`` and ``transcript`` in the chunk, and must
    also cope with a video where nothing was found.
    """
    info = check_plugin_info(plugin)
    check_cost_estimate(plugin)
    config = config or AnalysisConfig(project_id="contract", video_id="kit")
    end = min(duration_s, info.max_chunk_duration or duration_s)
    chunk = ChunkInfo(
        project_id="contract",
        video_id="kit",
        path=media_path,
        start_s=0.0,
        end_s=end,
        audio_path=audio_path,
        markers=markers or [],
        transcript=transcript,
    )
    found = check_markers(
        asyncio.run(plugin.detect_markers(chunk, config)), chunk, info.plugin_name, tuple(info.supported_events)
    )
    if info.uses_results:
        bare = chunk.model_copy(update={"markers": [], "transcript": None})
        assert (
            check_markers(
                asyncio.run(plugin.detect_markers(bare, config)), bare, info.plugin_name, tuple(info.supported_events)
            )
            == []
        ), "nothing found by the other plugins must give no markers"
        return found
    # failures must surface as PluginError so the orchestrator can retry or fall back
    with tempfile.TemporaryDirectory() as tmp:
        broken = ChunkInfo(
            project_id="contract",
            video_id="kit",
            path=os.path.join(tmp, "missing.mp4"),
            start_s=0.0,
            end_s=end,
            audio_path=os.path.join(tmp, "missing.wav"),
        )
        _expect_plugin_error(lambda: plugin.detect_markers(broken, config), "a missing input file")
    return found


def _expect_plugin_error(call, what: str) -> None:
    """``call()`` returns an awaitable that must fail with PluginError, the only error callers fall back from."""
    try:
        asyncio.run(call())
    except PluginError:
        return
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{what} raised {type(exc).__name__}, not PluginError: {exc}") from exc
    raise AssertionError(f"{what} did not raise PluginError")


def check_transcription_plugin(
    plugin: BaseTranscriptionPlugin,
    *,
    audio_path: str,
    config: Optional[TranscriptionConfig] = None,
) -> TranscriptionResult:
    info = check_plugin_info(plugin)
    check_cost_estimate(plugin)
    result = asyncio.run(plugin.transcribe(audio_path, config or TranscriptionConfig()))
    assert isinstance(result, TranscriptionResult), "transcribe must return a TranscriptionResult"
    last = -1.0
    for s in result.segments:
        assert 0 <= s.start_s <= s.end_s, f"segment {s.start_s}-{s.end_s} inverted"
        assert s.start_s >= last - 1e-6, "segments must be in time order"
        last = s.start_s
        for w in s.words:
            assert s.start_s - 0.5 <= w.start_s <= w.end_s <= s.end_s + 0.5, f"word {w.word!r} outside its segment"
            assert 0 <= w.probability <= 1
    assert result.plugin == info.plugin_name, f"result.plugin is {result.plugin!r}"
    with tempfile.TemporaryDirectory() as tmp:
        missing = os.path.join(tmp, "missing.wav")
        _expect_plugin_error(
            lambda: plugin.transcribe(missing, config or TranscriptionConfig()), "a missing audio file"
        )
    return result
