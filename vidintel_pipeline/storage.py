"""Object storage behind one small interface: the local filesystem here, S3 in a later module.

Keys are POSIX-style and always built by :mod:`vidintel_pipeline.layout`. Writes are atomic: data goes to
a temporary file beside the target and is renamed into place, so a reader never sees half an object and a
crash leaves no partial file under a final key.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .layout import InvalidIdError


class StorageError(RuntimeError):
    pass


class LocalStore:
    """A directory that behaves like a bucket."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """The local file behind ``key``; refuses keys that would escape the root."""
        if key.startswith("/") or "\\" in key:
            raise InvalidIdError(f"refusing absolute or backslashed key {key!r}")
        p = (self.root / key).resolve()
        if p != self.root and self.root not in p.parents:
            raise InvalidIdError(f"key {key!r} escapes the store root")
        return p

    def uri(self, key: str) -> str:
        return self.path(key).as_uri()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def list(self, prefix: str) -> Iterator[str]:
        base = self.path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".tmp-"))
            for f in sorted(filenames):
                if f.startswith(".tmp-"):
                    continue
                yield Path(dirpath, f).relative_to(self.root).as_posix()

    # writes ---------------------------------------------------------------------------------------------
    def _tmp_beside(self, target: Path) -> tuple[int, str]:
        target.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=".tmp-", dir=target.parent)

    def put_bytes(self, key: str, data: bytes) -> str:
        target = self.path(key)
        fd, tmp = self._tmp_beside(target)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            _unlink(tmp)
            raise
        return self.uri(key)

    def put_json(self, key: str, obj: Any) -> str:
        return self.put_bytes(key, json.dumps(obj, indent=2, sort_keys=False, default=str).encode())

    def put_file(self, key: str, src: str | os.PathLike[str], *, move: bool = False) -> str:
        """Copy (or move) a local file under ``key`` atomically."""
        target = self.path(key)
        src = Path(src)
        if move and src.parent.resolve() == target.parent:
            os.replace(src, target)
            return self.uri(key)
        fd, tmp = self._tmp_beside(target)
        os.close(fd)
        try:
            if move:
                shutil.move(str(src), tmp)
            else:
                shutil.copyfile(src, tmp)
            os.replace(tmp, target)
        except BaseException:
            _unlink(tmp)
            raise
        return self.uri(key)

    def staging_dir(self, key_prefix: str) -> Path:
        """A private temporary folder inside the target folder, for tools (ffmpeg) that write many files.

        Files are then moved in with :meth:`put_file` (``move=True``); the caller removes the folder.
        """
        target = self.path(key_prefix.rstrip("/"))
        target.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".tmp-", dir=target))

    # reads ----------------------------------------------------------------------------------------------
    def get_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"no object at {self.uri(key)}") from None

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def local_path(self, key: str) -> Path:
        """A local file to hand to media tools (the object itself, for a local store)."""
        p = self.path(key)
        if not p.is_file():
            raise StorageError(f"no object at {p.as_uri()}")
        return p

    def delete(self, key: str) -> None:
        _unlink(self.path(key))


def _unlink(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
