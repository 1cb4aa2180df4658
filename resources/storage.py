"""Where videos and results live.

On the embedded default both trees are folders under ``VIDINTEL_HOME`` (default ``./.vidintel``):
``data/ingest`` plays the ``S3_BUCKET`` role and ``data/output`` the ``S3_OUTPUT_BUCKET`` role.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import dagster as dg
from pydantic import Field

from vidintel_pipeline.storage import LocalStore


def default_home() -> str:
    return str(Path(os.environ.get("VIDINTEL_HOME", ".vidintel")).expanduser().resolve())


class VidintelStorage(dg.ConfigurableResource):
    """Ingestion and output stores, in the seed's multi-tenant layout."""

    home: Optional[str] = Field(default=None, description="vidintel's home folder; empty means $VIDINTEL_HOME or ./.vidintel.")
    ingest_dir: Optional[str] = Field(default=None, description="Ingestion tree; default {home}/data/ingest.")
    output_dir: Optional[str] = Field(default=None, description="Output tree; default {home}/data/output.")

    def home_dir(self) -> Path:
        return Path(self.home or default_home())

    def ingest(self) -> LocalStore:
        return LocalStore(self.ingest_dir or self.home_dir() / "data" / "ingest")

    def output(self) -> LocalStore:
        return LocalStore(self.output_dir or self.home_dir() / "data" / "output")
