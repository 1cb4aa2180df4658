"""The S3 store: any S3-compatible service through boto3 (AWS, MinIO, SeaweedFS, moto).

Uploads above ``multipart_threshold`` use multipart upload; boto3's transfer manager aborts a failed
multipart upload, and S3 only shows an object once its upload completes, so no half-written object is
ever visible. Downloads stream to a local cache file (never into memory) that is reused while the
object's ETag is unchanged. Network and service errors become :class:`StorageError` naming the object.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from vidintel_pipeline.storage.stores import ObjectInfo, StorageError, Store, check_key


class S3Store(Store):
    def __init__(
        self,
        bucket: str,
        client: Any,
        cache_dir: str | os.PathLike[str],
        *,
        multipart_threshold: int = 64 * 1024 * 1024,
        multipart_chunksize: int = 16 * 1024 * 1024,
    ):
        self.bucket = bucket
        self.client = client
        self.cache_dir = Path(cache_dir) / bucket
        self.transfer = TransferConfig(multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize)

    def __repr__(self) -> str:
        return f"S3Store({self.bucket!r})"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{check_key(key)}"

    def _err(self, what: str, key: str, exc: Exception) -> StorageError:
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            return StorageError(
                f"{what} {self.uri(key)} failed: {code} {exc.response.get('Error', {}).get('Message', '')}".strip()
            )
        endpoint = getattr(getattr(self.client, "meta", None), "endpoint_url", "?")
        return StorageError(
            f"{what} {self.uri(key)} failed: S3 unreachable at {endpoint} ({type(exc).__name__}: {exc})"
        )

    def head(self, key: str) -> Optional[ObjectInfo]:
        try:
            r = self.client.head_object(Bucket=self.bucket, Key=check_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._err("reading", key, exc) from exc
        except BotoCoreError as exc:
            raise self._err("reading", key, exc) from exc
        return ObjectInfo(key, r["ContentLength"], r["ETag"].strip('"'), r["LastModified"].timestamp())

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for o in page.get("Contents", []):
                    yield ObjectInfo(o["Key"], o["Size"], o["ETag"].strip('"'), o["LastModified"].timestamp())
        except (ClientError, BotoCoreError) as exc:
            raise self._err("listing", prefix or "/", exc) from exc

    def put_bytes(self, key: str, data: bytes) -> str:
        try:
            self.client.put_object(Bucket=self.bucket, Key=check_key(key), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._err("writing", key, exc) from exc
        return self.uri(key)

    def put_file(self, key: str, src: str | os.PathLike[str], *, move: bool = False) -> str:
        try:
            self.client.upload_file(os.fspath(src), self.bucket, check_key(key), Config=self.transfer)
        except (ClientError, BotoCoreError) as exc:
            raise self._err("uploading", key, exc) from exc
        except Exception as exc:  # S3UploadFailedError wraps the cause; the upload was aborted
            raise self._err("uploading", key, exc) from exc
        if move:
            os.unlink(src)
        return self.uri(key)

    def copy(self, src_key: str, dst_key: str) -> None:
        try:
            self.client.copy(
                {"Bucket": self.bucket, "Key": check_key(src_key)},
                self.bucket,
                check_key(dst_key),
                Config=self.transfer,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._err("copying", src_key, exc) from exc

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=check_key(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise StorageError(f"no object at {self.uri(key)}") from None
            raise self._err("reading", key, exc) from exc
        except BotoCoreError as exc:
            raise self._err("reading", key, exc) from exc

    def local_path(self, key: str) -> Path:
        info = self.head(key)
        if info is None:
            raise StorageError(f"no object at {self.uri(key)}")
        target = self.cache_dir / key
        tag = target.with_name(target.name + ".etag")
        if target.is_file() and tag.is_file() and tag.read_text() == info.etag:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        os.close(fd)
        try:
            self.client.download_file(self.bucket, key, tmp, Config=self.transfer)
            os.replace(tmp, target)
            tag.write_text(info.etag)
        except (ClientError, BotoCoreError) as exc:
            raise self._err("downloading", key, exc) from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=check_key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._err("deleting", key, exc) from exc
        cached = self.cache_dir / key
        for f in (cached, cached.with_name(cached.name + ".etag")):
            if f.is_file():
                f.unlink()

    def staging_dir(self, key_prefix: str) -> Path:
        base = self.cache_dir / ".staging"
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
