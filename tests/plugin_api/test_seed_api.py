"""The architecture document's registry snippets run as written (../shared/design/plugin-system-architecture.md)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[3] / "shared" / "design" / "plugin-system-architecture.md"

# each snippet exactly as the document shows it (the test checks that it still does, where the document is here)
SNIPPETS = {
    "dynamic loading": """
# Registry automatically discovers plugins
registry = TemporalMarkerRegistry()
registry.discover_plugins("./temporal_markers/")

# Get plugin by name
plugin = registry.get_plugin("aws_rekognition")

# Get plugins by capability
shot_detectors = registry.get_by_capability("shot_detection")
""",
    "cost tracking": """
# Each plugin reports its cost
cost = plugin.estimate_cost(duration_seconds=30)

# Registry tracks cumulative costs
total_cost = registry.get_total_cost(video_id)
""",
    "smart selection": """
# Choose cheapest plugin that meets requirements
plugin = registry.select_optimal_plugin(
    required_accuracy=0.85,
    max_cost_per_minute=0.50
)
""",
    "capability-based selection": """
# Orchestrator selects best plugin for task
plugin = registry.select_plugin(
    required_features=["shot_detection", "object_tracking"],
    preferred_cost=0.001,  # $/second
    chunk_duration=30
)
""",
}


def test_the_snippets_are_the_documents():
    if not DOC.is_file():
        pytest.skip(f"{DOC} is not beside this checkout")
    text = DOC.read_text()
    for name, code in SNIPPETS.items():
        assert textwrap.dedent(code).strip() in text, f"the {name} snippet no longer matches the document"


def test_the_registry_snippets_run_as_written(home, tmp_path, monkeypatch):
    import vidintel_pipeline
    from vidintel_pipeline import (  # noqa: F401  the public names the document and the issue list
        AnalysisConfig,
        BaseTemporalPlugin,
        BaseTranscriptionPlugin,
        ChunkInfo,
        IngestionPhase,
        PluginError,
        TemporalMarker,
        TemporalMarkerRegistry,
        TranscriptionConfig,
        TranscriptionResult,
    )
    from vidintel_pipeline.costs.ledger import CostLedger

    monkeypatch.chdir(tmp_path)
    (tmp_path / "temporal_markers").mkdir()
    (tmp_path / "temporal_markers" / "logos.py").write_text(
        textwrap.dedent("""
        from vidintel_pipeline import BaseTemporalPlugin, TemporalMarker

        class LogoPlugin(BaseTemporalPlugin):
            def get_plugin_info(self):
                return {"plugin_name": "logos", "plugin_version": "1.0.0", "supported_events": ["logo_appearance"]}

            async def detect_markers(self, chunk, config):
                return []
    """)
    )
    CostLedger(home / "ledger.sqlite").record(
        run_id="r",
        asset="temporal_markers",
        project_id="acme",
        video_id="v1",
        plugin="aws_rekognition",
        usd=0.4,
        media_seconds=60,
        cached=False,
    )
    scope = {name: getattr(vidintel_pipeline, name) for name in vidintel_pipeline.__all__} | {"video_id": "v1"}

    exec(SNIPPETS["dynamic loading"], scope)
    assert scope["plugin"].name == "aws_rekognition" and "logos" in scope["registry"].names()
    assert {p.name for p in scope["shot_detectors"]} >= {"local_shots", "aws_rekognition"}
    assert all(isinstance(p, BaseTemporalPlugin) for p in scope["shot_detectors"])

    exec(SNIPPETS["cost tracking"], scope)
    assert scope["cost"] > 0 and scope["total_cost"] == pytest.approx(0.4)

    exec(SNIPPETS["smart selection"], scope)
    assert scope["plugin"].info.cost_per_minute <= 0.5

    # nothing that ships offline tracks objects: the error names the missing feature and the closest plugins
    with pytest.raises(
        PluginError, match=r"no installed plugin offers \['object_tracking'\].*closest: .*shot_detection"
    ):
        exec(SNIPPETS["capability-based selection"], scope)
