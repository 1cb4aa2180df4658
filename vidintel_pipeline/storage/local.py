"""The local-folder store (the embedded default): atomic writes by rename, and no link or special file ever
followed or opened below its root, checked by descriptor so nothing swapped in after a listing gets through."""

from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from vidintel_pipeline.storage.layout import InvalidIdError
from vidintel_pipeline.storage.stores import ObjectInfo, StorageError, Store, UnsafeObjectError, check_key

# Folders are opened one component at a time, relative to the one before, without following links: no
# name is ever looked up again after it was checked, so a link swapped in meanwhile cannot redirect us.
# (O_NONBLOCK: a FIFO where a folder should be can never hold up the open; O_DIRECTORY refuses it.)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


# O_NONBLOCK: should a FIFO be swapped in after the lstat check, opening it returns at once instead of
# waiting for a writer (fstat then refuses it); on a regular file the flag does nothing
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


_LOG = logging.getLogger("vidintel.storage")


def _kind(mode: int) -> str:
    """What a non-regular directory entry is, in the words a skip or refusal reports."""
    if stat.S_ISLNK(mode):
        return "a symbolic link (the local store never follows links)"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a regular file: never opened"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a regular file"
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    return "not a regular file"


def _log_skipped(key: str, why: str) -> None:
    _LOG.warning(f"skipping {key!r}: {why}")


class LocalStore(Store):
    """A directory that behaves like a bucket: its objects are the regular files below the root.

    Nothing below the root is ever followed or opened unless it is a regular file in real folders.
    Listing skips symbolic links (to files or folders, dangling or not), FIFOs, sockets and devices, and
    reports each to ``skipped(key, why)`` (by default a warning on the ``vidintel.storage`` logger);
    symlinked folders are not walked. :meth:`head` of such an entry is None, as for a missing object;
    reading, copying or handing it to a tool raises :class:`UnsafeObjectError`, and so does any key whose
    path passes through a symlinked folder. :meth:`delete` removes the name in the store (a link itself,
    never its target). The root itself may be a link (users do that): it is resolved once, here.
    """

    def __init__(self, root: str | os.PathLike[str], *, skipped: Optional[Callable[[str, str], None]] = None):
        self.root = Path(root).resolve()
        self.skipped = skipped or _log_skipped

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """The local name behind ``key``, lexically (nothing is resolved); refuses keys that would escape the root."""
        if key.startswith("/") or "\\" in key:
            raise InvalidIdError(f"refusing absolute or backslashed key {key!r}")
        check_key(key)  # no '..', '.' or empty segment: the name cannot leave the root
        return self.root.joinpath(*key.rstrip("/").split("/"))

    def _parts(self, key: str) -> list[str]:
        self.path(key)
        return key.rstrip("/").split("/")

    def _open_dir(self, parts: list[str], key: str, *, create: bool = False) -> int:
        """A descriptor of the folder root/parts..., opened one component at a time, never through a link.

        Raises FileNotFoundError (a component is missing and ``create`` is false), NotADirectoryError (a
        component is a file) or :class:`UnsafeObjectError` (a component is a link or a special file).
        """
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for i, part in enumerate(parts):
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(part, dir_fd=fd)
                    except FileExistsError:
                        pass  # made meanwhile by another writer: opened (and checked) below
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    mode = os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode
                    if stat.S_ISREG(mode):
                        raise NotADirectoryError(errno.ENOTDIR, f"{'/'.join(parts[: i + 1])} is a file") from None
                    raise UnsafeObjectError(f"refusing {key}: {'/'.join(parts[: i + 1])} is {_kind(mode)}") from None
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _regular(self, key: str) -> tuple[int, str, os.stat_result]:
        """(folder descriptor, name, lstat) of the regular file behind ``key``; the caller closes the descriptor."""
        parts = self._parts(key)
        try:
            dfd = self._open_dir(parts[:-1], key)
        except (FileNotFoundError, NotADirectoryError):
            raise StorageError(f"no object at {self.uri(key)}") from None
        try:
            st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            os.close(dfd)
            raise StorageError(f"no object at {self.uri(key)}") from None
        if not stat.S_ISREG(st.st_mode):
            os.close(dfd)
            raise UnsafeObjectError(f"refusing {key}: it is {_kind(st.st_mode)}")
        return dfd, parts[-1], st

    @contextmanager
    def _open_read(self, key: str) -> Iterator[Any]:
        """The regular file behind ``key``, opened without following a link and checked to be what lstat saw."""
        dfd, name, st = self._regular(key)
        try:
            try:
                fd = os.open(name, _READ_FLAGS, dir_fd=dfd)
            except OSError as exc:
                raise UnsafeObjectError(f"refusing {key}: it changed while being opened ({exc.strerror})") from None
        finally:
            os.close(dfd)
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            os.close(fd)
            raise UnsafeObjectError(f"refusing {key}: it was replaced while being opened")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as fh:
            yield fh

    def uri(self, key: str) -> str:
        return self.path(key).as_uri()

    def head(self, key: str) -> Optional[ObjectInfo]:
        """The object's info; None when there is none, or when the key is a link or a special file."""
        try:
            dfd, _, st = self._regular(key)
        except StorageError:
            return None
        os.close(dfd)
        return ObjectInfo(key, st.st_size, f"{st.st_size:x}-{st.st_mtime_ns:x}", st.st_mtime)

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        folder = prefix.rstrip("/")
        try:
            fd = self._open_dir(self._parts(folder) if folder else [], prefix)
        except (FileNotFoundError, NotADirectoryError):
            return
        except UnsafeObjectError as exc:
            self.skipped(folder, str(exc))
            return
        yield from self._walk(fd, folder.split("/") if folder else [], prefix)

    def _walk(self, fd: int, parts: list[str], prefix: str) -> Iterator[ObjectInfo]:
        """Files of this folder (sorted), then its subfolders; lstat only, so a FIFO or device is never opened."""
        try:
            with os.scandir(fd) as it:
                entries = sorted(it, key=lambda e: e.name)
            folders = []
            for e in entries:
                if e.name.startswith(".tmp-"):
                    continue  # a write in progress or a tool's staging folder: invisible until renamed into place
                key = "/".join([*parts, e.name])
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while listing
                if stat.S_ISDIR(st.st_mode):
                    folders.append(e.name)
                elif not key.startswith(prefix):
                    continue
                elif stat.S_ISREG(st.st_mode):
                    yield ObjectInfo(key, st.st_size, f"{st.st_size:x}-{st.st_mtime_ns:x}", st.st_mtime)
                else:
                    self.skipped(key, _kind(st.st_mode))
            for name in folders:
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    self.skipped("/".join([*parts, name]), "replaced by a link or a file while listing: not walked")
                    continue
                yield from self._walk(sub, [*parts, name], prefix)
        finally:
            os.close(fd)

    def _write(self, key: str, fill: Callable[[Any], None], *, sync: bool = False) -> str:
        """Write ``key`` atomically: ``fill(file)`` writes a temporary file beside it, renamed into place.

        The rename replaces whatever name is there (a link is replaced, its target untouched); every folder
        on the way is a real folder (made if missing), never a link.
        """
        parts = self._parts(key)
        try:
            dfd = self._open_dir(parts[:-1], key, create=True)
        except OSError as exc:  # a file where a folder should be, permissions, a full disk
            _raise_clear(key, exc)
        tmp = f".tmp-{secrets.token_hex(8)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fill(fh)
                    fh.flush()
                    if sync:
                        os.fsync(fh.fileno())
                os.replace(tmp, parts[-1], src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException as exc:
                _unlink_at(tmp, dfd)
                _raise_clear(key, exc)
        finally:
            os.close(dfd)
        return self.uri(key)

    def put_bytes(self, key: str, data: bytes) -> str:
        return self._write(key, lambda fh: fh.write(data), sync=True)

    def put_file(self, key: str, src: str | os.PathLike[str], *, move: bool = False) -> str:
        """Store a local file from outside the store, or a tool's output from a staging folder (``move``).

        ``src`` is the caller's own path (a file the user named, a staging file), so it is opened as
        given; it must be a regular file.
        """
        src = Path(src)
        if move:  # a rename within one file system is atomic: no temporary copy needed
            parts = self._parts(key)
            dfd = self._open_dir(parts[:-1], key, create=True)
            try:
                os.replace(src, parts[-1], dst_dir_fd=dfd)
                return self.uri(key)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    _raise_clear(key, exc)
            finally:
                os.close(dfd)
        with open(src, "rb") as fh:  # FileNotFoundError propagates unchanged, as callers expect
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise StorageError(f"cannot store {src} as {key}: not a regular file")
            uri = self._write(key, lambda out: _copy_fd(fh.fileno(), out.fileno()))
        if move:
            _unlink(src)
        return uri

    def copy(self, src_key: str, dst_key: str) -> None:
        with self._open_read(src_key) as fh:
            self._write(dst_key, lambda out: _copy_fd(fh.fileno(), out.fileno()))

    def staging_dir(self, key_prefix: str) -> Path:
        parts = self._parts(key_prefix)
        dfd = self._open_dir(parts, key_prefix, create=True)
        try:
            name = f".tmp-{secrets.token_hex(8)}"
            os.mkdir(name, 0o700, dir_fd=dfd)
        finally:
            os.close(dfd)
        return self.root.joinpath(*parts, name)

    def get_bytes(self, key: str) -> bytes:
        with self._open_read(key) as fh:
            return fh.read()

    def local_path(self, key: str) -> Path:
        """The file's local name, for media tools, once checked to be a regular file in real folders.

        The tool then opens it by name. Only the pipeline writes below ``projects/``, where these keys
        live; what users drop (``incoming/``) is only ever read through :meth:`copy`, by descriptor.
        """
        os.close(self._regular(key)[0])
        return self.path(key)

    def delete(self, key: str) -> None:
        """Remove the name ``key`` (a link itself, never its target); refused through a symlinked folder."""
        parts = self._parts(key)
        try:
            dfd = self._open_dir(parts[:-1], key)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            os.unlink(parts[-1], dir_fd=dfd)  # unlink never follows a link: it removes the link
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            raise StorageError(f"refusing to delete {key}: it is a folder") from None
        finally:
            os.close(dfd)


def _copy_fd(src: int, dst: int) -> None:
    """Copy the rest of ``src`` to ``dst``: in the kernel (sendfile) where it can, else through a buffer."""
    offset = os.lseek(src, 0, os.SEEK_CUR)
    try:
        while sent := os.sendfile(dst, src, offset, 1 << 30):
            offset += sent
        return
    except OSError as exc:  # EFBIG, ENOSPC, EDQUOT go to the caller, which names the key and the reason
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSOCK, errno.EOPNOTSUPP):
            raise
    os.lseek(src, offset, os.SEEK_SET)  # no sendfile to a file here (macOS): a plain copy from where it stopped
    while block := os.read(src, 4 << 20):
        view = memoryview(block)
        while view:
            view = view[os.write(dst, view) :]


def _unlink_at(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def _unlink(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _raise_clear(key: str, exc: BaseException) -> None:
    """Disk full, quota, permissions: a StorageError naming the key and the reason (the partial file is gone)."""
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
        raise StorageError(f"cannot write {key}: {exc.strerror or exc}") from exc
    raise exc
