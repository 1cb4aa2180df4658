"""Object storage behind one small interface: a local folder (embedded default) or an S3 bucket.

Keys are POSIX-style and always built by :mod:`vidintel_pipeline.storage.layout`. Writes are atomic from a
reader's point of view: a local write goes to a temporary file beside its target and is renamed into
place; an S3 object only becomes visible once its single PUT or its multipart upload completes, and a
failed multipart upload is aborted, so nothing partial is ever left under a final key.

Tenancy is enforced here, in one place: :meth:`Store.scoped` returns a view that refuses every key
outside ``projects/{project_id}/``. Assets only ever touch storage through such a view. The local store
never follows a symbolic link below its root and never opens anything but a regular file (a link
dropped in ``incoming/`` could otherwise name another project's video: see
:class:`vidintel_pipeline.storage.local.LocalStore`). S3 is :mod:`vidintel_pipeline.storage.s3`.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from vidintel_pipeline.storage.layout import InvalidIdError, project_prefix, validate_id


class StorageError(RuntimeError):
    """Storage could not be read or written: the message names the object and the reason."""


class TenancyError(InvalidIdError):
    """A key outside the project a run is scoped to."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: float  # seconds since the epoch


def check_key(key: str) -> str:
    if not key or key.startswith("/") or "\\" in key or any(ord(c) < 32 for c in key):
        raise InvalidIdError(f"refusing key {key!r}")
    if any(part in ("", ".", "..") for part in key.rstrip("/").split("/")):
        raise InvalidIdError(f"refusing key {key!r}: empty, '.' or '..' segment")
    return key


class Store(ABC):
    @abstractmethod
    def uri(self, key: str) -> str: ...

    @abstractmethod
    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]: ...

    @abstractmethod
    def head(self, key: str) -> Optional[ObjectInfo]: ...

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> str: ...

    @abstractmethod
    def put_file(self, key: str, src: str | os.PathLike[str], *, move: bool = False) -> str: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def local_path(self, key: str) -> Path:
        """A local file to hand to media tools: the object itself, or a streamed, cached download."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def staging_dir(self, key_prefix: str) -> Path:
        """A private local folder for tools (ffmpeg) that write many files; the caller removes it."""

    @abstractmethod
    def copy(self, src_key: str, dst_key: str) -> None: ...

    # shared conveniences --------------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def size(self, key: str) -> int:
        info = self.head(key)
        if info is None:
            raise StorageError(f"no object at {self.uri(key)}")
        return info.size

    def list(self, prefix: str) -> Iterator[str]:
        for o in self.list_objects(prefix):
            yield o.key

    def put_json(self, key: str, obj: Any) -> str:
        return self.put_bytes(key, json.dumps(obj, indent=2, default=str).encode())

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def scoped(self, project_id: str) -> "ScopedStore":
        return ScopedStore(self, project_id)


class ScopedStore(Store):
    """A view of a store limited to one project's prefix: the tenancy boundary."""

    def __init__(self, inner: Store, project_id: str):
        self.inner = inner
        self.project_id = validate_id(project_id, "project id")
        self.prefix = project_prefix(project_id)

    def __repr__(self) -> str:
        return f"{self.inner!r}.scoped({self.project_id!r})"

    def _ok(self, key: str) -> str:
        check_key(key)
        if not key.startswith(self.prefix):
            raise TenancyError(f"project {self.project_id!r} may not touch {key!r} (outside {self.prefix})")
        return key

    def uri(self, key):
        return self.inner.uri(self._ok(key))

    def list_objects(self, prefix):
        return self.inner.list_objects(self._ok(prefix))

    def head(self, key):
        return self.inner.head(self._ok(key))

    def put_bytes(self, key, data):
        return self.inner.put_bytes(self._ok(key), data)

    def put_file(self, key, src, *, move=False):
        return self.inner.put_file(self._ok(key), src, move=move)

    def get_bytes(self, key):
        return self.inner.get_bytes(self._ok(key))

    def local_path(self, key):
        return self.inner.local_path(self._ok(key))

    def delete(self, key):
        self.inner.delete(self._ok(key))

    def staging_dir(self, key_prefix):
        return self.inner.staging_dir(self._ok(key_prefix))

    def copy(self, src_key, dst_key):
        self.inner.copy(self._ok(src_key), self._ok(dst_key))


class UnsafeObjectError(StorageError):
    """A local key that is, or passes through, a symbolic link or a special file: never followed, never opened."""
