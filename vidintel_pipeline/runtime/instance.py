"""The embedded Dagster instance: SQLite under ``$VIDINTEL_HOME/dagster``, shared by the CLI and ``make ui``."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

DAGSTER_YAML = """\
# Embedded default: SQLite run, event and schedule storage in this folder.
telemetry:
  enabled: false
run_queue:
  max_concurrent_runs: 2
  tag_concurrency_limits:  # one run of a video at a time: two would mix their outputs
    - key: dagster/partition
      value: {applyLimitPerUniqueValue: true}
      limit: 1
# every run through the routing launcher: runs launched from an asset page get their vidintel/project and
# vidintel/video tags from the partition (and GPU work is tagged), then run as the default launcher runs them
run_launcher:
  module: vidintel_pipeline.runtime.launchers
  class: TagRoutingRunLauncher
"""


def vidintel_home() -> Path:
    home = Path(os.environ.get("VIDINTEL_HOME", ".vidintel")).expanduser().resolve()
    os.environ["VIDINTEL_HOME"] = str(home)  # resources read it; make it absolute once
    return home


def ensure_instance_home() -> Path:
    """Point ``DAGSTER_HOME`` at ``$VIDINTEL_HOME/dagster`` (unless set) and create its dagster.yaml."""
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or vidintel_home() / "dagster").resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    cfg = dagster_home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dagster_home


def get_instance() -> dg.DagsterInstance:
    ensure_instance_home()
    return dg.DagsterInstance.get()
