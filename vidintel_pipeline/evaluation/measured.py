"""The measured-accuracy file: what ``vidintel plugins benchmark`` found, read by the registry when it selects.

One JSON file, ``$VIDINTEL_HOME/benchmarks/accuracy.json`` (``VIDINTEL_ACCURACY_FILE`` overrides), written
atomically: ``{plugin: {"plugin_version", "measured_at", "truth", "videos", "features": {feature: {"score",
"tp", "fp", "fn", "videos"}}}}``. A figure measured on another version of a plugin is stale and not used: a
new detector must earn its figures again.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional


def accuracy_file() -> Path:
    env = os.environ.get("VIDINTEL_ACCURACY_FILE")
    if env:
        return Path(env).expanduser()
    from vidintel_pipeline.runtime.instance import vidintel_home

    return vidintel_home() / "benchmarks" / "accuracy.json"


def read_measured(path: Optional[Path] = None) -> dict[str, Any]:
    """Every plugin's stored figures; ``{}`` when nothing was measured yet or the file is unreadable."""
    p = path or accuracy_file()
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_measured(results: dict[str, Any], path: Optional[Path] = None) -> Path:
    """Merge ``results`` (per plugin) into the file: plugins not benchmarked this time keep their figures."""
    p = path or accuracy_file()
    p.parent.mkdir(parents=True, exist_ok=True)
    data = read_measured(p) | results
    fd, tmp = tempfile.mkstemp(prefix=".accuracy-", dir=p.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(tmp, p)
    return p


def measured_scores(entry: Optional[dict[str, Any]], plugin_version: str) -> dict[str, float]:
    """``{feature: score}`` from one plugin's entry, or ``{}`` if it was measured on another version."""
    if not entry or entry.get("plugin_version") != plugin_version:
        return {}
    return {k: float(v["score"]) for k, v in entry.get("features", {}).items()}
