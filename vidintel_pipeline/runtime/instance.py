"""The embedded Dagster instance: SQLite under ``$VIDINTEL_HOME/dagster``, shared by the CLI and ``make ui``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import dagster as dg

DAGSTER_YAML = """\
# Embedded default: SQLite run, event and schedule storage in this folder.
telemetry:
  enabled: false
# Dagster's SQLite storage, its event databases kept open between events (runtime/sqlite_storage.py says why)
storage:
  custom:
    module: vidintel_pipeline.runtime.sqlite_storage
    class: VidintelSqliteStorage
    config:
      base_dir: {env: DAGSTER_HOME}
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
_STORAGE_BLOCK = DAGSTER_YAML[DAGSTER_YAML.index("# Dagster's SQLite storage") : DAGSTER_YAML.index("run_queue:")]
# what the versions since 4304928 (the routing launcher) wrote, before the storage block: such a file, unedited, is
# brought up to date (older or edited ones are left as they are)
_EARLIER_DAGSTER_YAML = DAGSTER_YAML.replace(_STORAGE_BLOCK, "")


def vidintel_home() -> Path:
    home = Path(os.environ.get("VIDINTEL_HOME", ".vidintel")).expanduser().resolve()
    os.environ["VIDINTEL_HOME"] = str(home)  # resources read it; make it absolute once
    return home


def ensure_instance_home() -> Path:
    """Point ``DAGSTER_HOME`` at ``$VIDINTEL_HOME/dagster`` (unless set) and create its dagster.yaml.

    A dagster.yaml an earlier version wrote, unedited, gets today's (the same settings, plus the storage
    block); an edited one is left as it is.
    """
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or vidintel_home() / "dagster").resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    cfg = dagster_home / "dagster.yaml"
    if not cfg.exists() or cfg.read_text() == _EARLIER_DAGSTER_YAML:
        fd, partial = tempfile.mkstemp(prefix=".dagster.yaml.", dir=dagster_home)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(DAGSTER_YAML)
            os.chmod(partial, 0o644)
            os.replace(partial, cfg)  # whole or not at all: another process may be reading it
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dagster_home


def get_instance() -> dg.DagsterInstance:
    ensure_instance_home()
    return dg.DagsterInstance.get()
