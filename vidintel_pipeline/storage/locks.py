"""One writer at a time on this machine: per-video locks for ingest runs, per-project locks for the search index.

A lock is an ``fcntl.flock`` on a file in ``$VIDINTEL_HOME/locks/`` (the folder the CLI and ``make ui``
share). The kernel drops it when its holder exits, however it exits (SIGKILL and OOM included), so a
crash never leaves a video locked. The holder writes who it is into the file while it holds it, so a
refused caller can say who has it. The files stay: removing one while another process waits on it
would let two holders in.

* ``vidintel ingest`` holds its video's lock for its whole run and fails fast when another has it.
* Runs the daemon launches (sensor, schedule, UI) take the same lock in their run worker, through
  :func:`vidintel_pipeline.runtime.executors.video_locked`, and wait for it: a run never overlaps a CLI
  ingest of the same video.
* The sensor leaves a video whose lock is held for a later tick (:func:`holder`).
* :mod:`vidintel_pipeline.outputs.search` holds the project's index lock around read, update and upload.

These are local file locks: they order processes on one machine. Across machines (S3 storage, runs on
Kubernetes), the run queue's ``dagster/partition`` limit in ``deploy/dagster.yaml`` keeps two queued
runs of one video apart; it does not see a ``vidintel ingest`` started on another machine.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

from vidintel_pipeline.runtime.instance import vidintel_home
from vidintel_pipeline.storage.layout import VideoRef, validate_id

# a sensor's probe holds a lock for microseconds: a caller that fails fast retries this long first
GRACE_S = 2.0


class Busy(RuntimeError):
    """The lock is held by someone else; ``holder`` says who, as they wrote it."""

    def __init__(self, what: str, holder_text: str):
        super().__init__(f"{what} is held by {holder_text}")
        self.what = what
        self.holder = holder_text


def lock_path(name: str) -> Path:
    d = vidintel_home() / "locks"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{name}.lock"


def video_lock_name(ref: VideoRef) -> str:
    return f"video-{ref.partition_key}"


def index_lock_name(project_id: str) -> str:
    return f"index-{validate_id(project_id, 'project id')}"


def _who(fd: int) -> str:
    raw = os.pread(fd, 4096, 0)
    try:
        h = json.loads(raw)
        return f"pid {h['pid']} ({h['what']}, since {h['since']})"
    except (ValueError, KeyError, TypeError):
        return "another process"  # it has the lock but has not written its name yet


@contextmanager
def held(
    name: str,
    what: str,
    *,
    wait: bool = False,
    grace_s: float = GRACE_S,
    waiting: Optional[Callable[[str], None]] = None,
) -> Iterator[None]:
    """Hold the lock ``name``. Busy after ``grace_s`` unless ``wait``; ``waiting(holder)`` is told once when waiting."""
    fd = os.open(lock_path(name), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline, told = time.monotonic() + grace_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait and time.monotonic() >= deadline:
                    raise Busy(name, _who(fd)) from None
                if wait and not told and waiting is not None:
                    waiting(_who(fd))
                    told = True
                time.sleep(0.05 if not wait else 0.5)  # polled, not blocking: a run can still be terminated
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, json.dumps({"pid": os.getpid(), "what": what, "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode(), 0
        )
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # while still held: an empty file never names a holder that has gone
    finally:
        os.close(fd)  # releases the lock


def holder(name: str) -> Optional[str]:
    """Who holds ``name`` now, or None when nobody does (a shared probe held for microseconds)."""
    path = lock_path(name)
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _who(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
