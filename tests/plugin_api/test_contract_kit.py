"""Every built-in plugin passes the plugin contract kit; the kit itself catches broken plugins."""

import pytest

from vidintel_pipeline.media.audio import extract_audio
from vidintel_pipeline.media.samples import speech_fixture
from vidintel_pipeline.plugin_api.contracts import BaseTemporalPlugin, ChunkInfo, PluginInfo, TemporalMarker
from vidintel_pipeline.plugin_api.registry import PluginRegistry
from vidintel_pipeline.plugin_api.testing import check_markers, check_temporal_plugin, check_transcription_plugin

REG = PluginRegistry.default()
# cloud plugins run the same kit in tests/plugins/test_cloud_plugins.py, against their provider replays
CLOUD = {"aws_rekognition", "aws_transcribe", "openai_transcribe", "nvidia_vila"}


def test_every_cloud_plugin_runs_the_kit_against_its_replay():
    from pathlib import Path

    src = (Path(__file__).parents[1] / "plugins" / "test_cloud_plugins.py").read_text()
    assert CLOUD <= set(REG.names())
    for name in CLOUD:
        assert f'registry.get_plugin("{name}"' in src and "check_" in src


@pytest.mark.parametrize("name", [n for n in REG.names("temporal") if n not in CLOUD])
def test_builtin_temporal_plugins_pass_the_kit(name, demo_video, tmp_path):
    path, truth = demo_video
    wav = extract_audio(path, tmp_path / "a.wav")
    plugin = REG.get_plugin(name)
    evidence = {}
    if plugin.info.uses_results:  # it reads what the others found: give it the demo's spoken sentences and its bars
        from vidintel_pipeline.plugin_api.contracts import AnalysisConfig, TranscriptionResult

        speech = [{"start_s": s["start_s"], "end_s": s["end_s"], "text": s["text"]} for s in truth.speech]
        evidence = {
            "transcript": TranscriptionResult(segments=speech),
            "markers": [
                TemporalMarker(
                    type="technical_cue",
                    start_s=a,
                    end_s=b,
                    label="color_bars",
                    confidence=0.9,
                    plugin="local_technical_cues",
                )
                for a, b in truth.bars
            ],
            "config": AnalysisConfig(prompt="how much did sales grow"),
        }
        # and the demo's shots (its cuts and transitions), for plugins that group them
        evidence["markers"] += [
            TemporalMarker(type="shot_boundary", start_s=t, end_s=t, label="cut", confidence=1, plugin="local_shots")
            for t in truth.cuts
        ] + [
            TemporalMarker(
                type="shot_boundary",
                start_s=t["start_s"],
                end_s=t["end_s"],
                label=t["kind"],
                confidence=1,
                plugin="local_shots",
                attributes={"transition": t["kind"]},
            )
            for t in truth.transitions
        ]
    markers = check_temporal_plugin(
        plugin, media_path=str(path), duration_s=truth.duration_s, audio_path=str(wav), **evidence
    )
    assert markers, f"{name} found nothing on the demo video"
    if "custom_prompt" in plugin.info.supported_events:
        assert "revenue" in markers[0].attributes["matched"], markers
    if "scene_change" in plugin.info.supported_events:  # the dissolve and the fade through black open scenes
        assert len(markers) >= len(truth.transitions) and all(m.attributes["why"] for m in markers), markers


@pytest.mark.parametrize("name", [n for n in REG.names("transcription") if n not in CLOUD])
def test_builtin_transcription_plugins_pass_the_kit(name):
    result = check_transcription_plugin(REG.get_plugin(name), audio_path=str(speech_fixture("speech_c")[0]))
    assert result.word_count > 5


class _Unsorted(BaseTemporalPlugin):
    def get_plugin_info(self):
        return PluginInfo(plugin_name="unsorted", plugin_version="1", supported_events=["x"])

    async def detect_markers(self, chunk, config):
        return [
            TemporalMarker(type="custom_prompt", start_s=s, end_s=s, label="x", confidence=1, plugin="unsorted")
            for s in (5, 1)
        ]


def test_the_kit_catches_contract_breaches(demo_video):
    chunk = ChunkInfo(project_id="p", video_id="v", path="x", start_s=0, end_s=10)
    with pytest.raises(AssertionError, match="sorted"):
        check_markers(
            [
                TemporalMarker(type="custom_prompt", start_s=s, end_s=s, label="x", confidence=1, plugin="u")
                for s in (5, 1)
            ],
            chunk,
            "u",
        )
    with pytest.raises(AssertionError, match="outside chunk"):
        check_markers(
            [TemporalMarker(type="custom_prompt", start_s=11, end_s=12, label="x", confidence=1, plugin="u")],
            chunk,
            "u",
        )
    with pytest.raises(AssertionError, match="did not raise PluginError|sorted"):
        check_temporal_plugin(_Unsorted(), media_path=str(demo_video[0]), duration_s=10)
