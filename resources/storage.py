"""Where videos and results live: local folders by default, S3 buckets when configured.

* Embedded default: ``$VIDINTEL_HOME/data/ingest`` plays ``S3_BUCKET`` and ``$VIDINTEL_HOME/data/output``
  plays ``S3_OUTPUT_BUCKET``.
* S3: set ``S3_BUCKET`` (and ``S3_OUTPUT_BUCKET``, default the same bucket) or the resource's
  ``s3_bucket``/``s3_output_bucket``. S3-compatible services are reached through boto3's standard
  ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` (or ``s3_endpoint_url``); credentials come from the usual
  AWS environment variables or profiles, never from config.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import dagster as dg
from pydantic import Field

from vidintel_pipeline.storage.layout import VideoRef
from vidintel_pipeline.storage.local import LocalStore
from vidintel_pipeline.storage.s3 import S3Store
from vidintel_pipeline.storage.stores import ScopedStore, StorageError, Store


def default_home() -> str:
    return str(Path(os.environ.get("VIDINTEL_HOME", ".vidintel")).expanduser().resolve())


class VidintelStorage(dg.ConfigurableResource):
    """Ingestion and output stores, in the seed's multi-tenant layout."""

    home: Optional[str] = Field(
        default=None, description="vidintel's home folder; empty means $VIDINTEL_HOME or ./.vidintel."
    )
    ingest_dir: Optional[str] = Field(default=None, description="Local ingestion tree; default {home}/data/ingest.")
    output_dir: Optional[str] = Field(default=None, description="Local output tree; default {home}/data/output.")
    s3_bucket: Optional[str] = Field(
        default=None, description="Ingestion bucket; empty means $S3_BUCKET, and local if unset."
    )
    s3_output_bucket: Optional[str] = Field(
        default=None, description="Output bucket; empty means $S3_OUTPUT_BUCKET, else the ingestion bucket."
    )
    s3_endpoint_url: Optional[str] = Field(
        default=None, description="S3-compatible endpoint; empty means boto3's AWS_ENDPOINT_URL(_S3)."
    )
    region_name: Optional[str] = Field(
        default=None, description="AWS region; empty means AWS_DEFAULT_REGION / AWS_REGION."
    )
    multipart_threshold_mb: int = Field(default=64, ge=5, description="Files larger than this upload in parts.")
    max_source_mb: Optional[int] = Field(
        default=None,
        ge=1,
        description="Videos larger than this are refused before any work; empty means "
        "$VIDINTEL_MAX_SOURCE_MB, else 51200 (50 GB).",
    )

    strict_media: Optional[bool] = Field(
        default=None,
        description="Refuse truncated or damaged sources (a permanent failure) instead of analysing what is readable "
        "and warning; empty means $VIDINTEL_STRICT (1/true), else off. `vidintel ingest --strict` sets it.",
    )

    def strict(self) -> bool:
        if self.strict_media is not None:
            return self.strict_media
        return os.environ.get("VIDINTEL_STRICT", "").strip().lower() in ("1", "true", "yes")

    def check_size(self, name: str, size_bytes: int) -> None:
        """Refuse a source over the size limit with a message naming the file, its size and the setting."""
        limit = self.max_source_mb or int(os.environ.get("VIDINTEL_MAX_SOURCE_MB") or 51200)
        if size_bytes > limit * 1024 * 1024:
            raise StorageError(
                f"{name}: {size_bytes / 2**20:.1f} MB is over the {limit} MB limit "
                "(storage.max_source_mb or VIDINTEL_MAX_SOURCE_MB)"
            )

    def home_dir(self) -> Path:
        return Path(self.home or default_home())

    def _buckets(self) -> tuple[Optional[str], Optional[str]]:
        ingest = self.s3_bucket or os.environ.get("S3_BUCKET") or None
        output = self.s3_output_bucket or os.environ.get("S3_OUTPUT_BUCKET") or ingest
        return ingest, output

    @property
    def is_s3(self) -> bool:
        return self._buckets()[0] is not None

    def _s3(self, bucket: str) -> S3Store:
        region = self.region_name or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        from dagster_aws.s3 import S3Resource  # only when S3 is configured: importing dagster-aws costs ~1 s

        client = S3Resource(endpoint_url=self.s3_endpoint_url, region_name=region).get_client()
        mb = self.multipart_threshold_mb * 1024 * 1024
        return S3Store(
            bucket,
            client,
            self.home_dir() / "s3-cache",
            multipart_threshold=mb,
            multipart_chunksize=max(5 * 1024 * 1024, mb // 4),
        )

    def ingest(self) -> Store:
        bucket = self._buckets()[0]
        return self._s3(bucket) if bucket else LocalStore(self.ingest_dir or self.home_dir() / "data" / "ingest")

    def output(self) -> Store:
        bucket = self._buckets()[1]
        return self._s3(bucket) if bucket else LocalStore(self.output_dir or self.home_dir() / "data" / "output")

    def for_video(self, ref: VideoRef) -> tuple[ScopedStore, ScopedStore]:
        """The ingestion and output stores, each limited to the video's project."""
        return self.ingest().scoped(ref.project_id), self.output().scoped(ref.project_id)
