"""The embedded instance's SQLite storage: Dagster's own, with each event database's connection kept open.

Why: Dagster's SQLite event log opens a new engine and connection for every event it stores, and closes them
after. Closing the last connection to a WAL database checkpoints it (fsync) and deletes the WAL file, and every
commit under SQLite's default ``synchronous=FULL`` waits for another fsync. A short video's run stores about 90
events; sampled with py-spy, opening, syncing and closing took 16 % of the time of `vidintel ingest` on a folder
of 20 clips of 12 s. Here each database keeps one connection (a few most recently used run databases, the
index and the run list), and commits use ``synchronous=NORMAL``: in WAL mode SQLite then syncs at checkpoints,
not at every commit. Measured on 2 cores: an engine event stored in 0.37 ms instead of 2.47 ms, and that folder
ingested in 32.5 and 34.5 s instead of 40.4 and 43.1 s (one sitting, alternating). Both halves count: in an
earlier sitting, with only the event databases' connections kept, 49.4 and 50.6 s became 45.0 s at
``synchronous=FULL`` and 39.5 and 40.0 s at ``NORMAL``.

What NORMAL risks: a crash of the process loses nothing. A power cut or an OS crash can lose what was committed
since a database's last checkpoint (a run's own database is checkpointed when its connection closes, so that
can be the whole run; the kernel normally writes it out within half a minute), each database (the run list,
the index, a run's) on its own, and never corrupts one (SQLite's WAL guarantee). A run can then look unfinished,
or a video's ``memory`` unmaterialized, and the nightly re-scan ingests that video again. ``synchronous: FULL``
in the storage's config syncs every commit, as Dagster's default does.

Two things Dagster's SQLite storage did by opening and closing, done here on purpose: watchers of a run (the UI's
live run log) poll for its new events, as on Postgres, since Dagster's watch the run's ``.db`` file, which a
kept connection's commits (in the ``-wal`` file) leave alone; and no connection crosses a fork (idle ones are
closed just before, anything else the child inherits it never touches).

Tables, files and folders are Dagster's (``$DAGSTER_HOME/history/runs/*.db``): a home can switch between this
storage and Dagster's plain ``sqlite`` storage and keep its history. The embedded ``dagster.yaml``
(``DAGSTER_YAML`` in :mod:`.instance`) selects it with a ``storage: custom:`` block.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from functools import cached_property
from typing import Any, Iterator, Optional

import sqlalchemy as sa
from dagster._config import Field, StringSource
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log.polling_event_watcher import SqlPollingEventWatcher
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

OPEN_RUN_DATABASES = 4  # run databases kept open per storage (instance); runs it writes at once, with room to spare
SYNCHRONOUS = ("NORMAL", "FULL")


def _config_type() -> Any:
    """The config of both storages below: Dagster's ``base_dir``, and SQLite's ``synchronous``."""
    return {"base_dir": StringSource, "synchronous": Field(str, is_required=False, default_value="NORMAL")}


class _KeptEngines:
    """SQLAlchemy engines by database file, each keeping one connection open, the least recently used closed
    beyond ``keep``. No connection crosses a fork: idle ones are closed in the parent just before it (a forked
    child must not even close a connection its parent opened, SQLite's "How to corrupt" 2.6), and whatever the
    child inherits anyway (a connection in use by another thread) is kept referenced there, never closed."""

    def __init__(self, synchronous: str, keep: int, always: str):
        self._keep = keep
        self._always = always  # the database never closed for another (the index, the run list)
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._files: dict[str, Optional[tuple[int, int]]] = {}  # name -> (device, inode) when opened
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self.synchronous = ""
        self.set_synchronous(synchronous)
        _ALL.add(self)

    def set_synchronous(self, value: str) -> None:
        """SQLite's ``synchronous`` for this storage's connections (those already open are closed)."""
        if value.upper() not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}, not {value!r}")
        if value.upper() != self.synchronous:
            self.dispose()
            self.synchronous = value.upper()

    def get(self, name: str, url: str, path: str) -> tuple[Engine, bool]:
        """The engine for database ``name`` at ``path``, and whether it was opened anew (first use, or the file
        was deleted or replaced since: another process's ``dagster instance wipe``)."""
        with self._lock:
            if os.getpid() != self._pid:  # forked without the handlers below (they run for os.fork only)
                self._forget()
            here = _identity(path)
            kept = self._engines.get(name)
            if kept is not None and (self._files.get(name) is None or self._files[name] == here):
                self._engines.move_to_end(name)
                if self._files.get(name) is None:
                    self._files[name] = here  # created by its first connection
                return kept, False
            if kept is not None:
                self._engines.pop(name).dispose()
            engine = sa.create_engine(
                url,
                poolclass=QueuePool,
                pool_size=1,  # the one kept open; another thread's, or one borrowed inside another, is an overflow:
                max_overflow=-1,  # opened and closed as Dagster's are, never waited for
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            sa.event.listen(engine, "connect", self._on_connect)
            sa.event.listen(engine, "checkout", _not_mid_transaction)
            self._engines[name] = engine
            self._files[name] = here
            others = [k for k in self._engines if k != self._always]
            for old in others[: max(0, len(others) - self._keep)]:
                self._engines.pop(old).dispose()
                self._files.pop(old, None)
            return engine, True

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA synchronous={self.synchronous}")
        cursor.close()

    def close_idle(self) -> None:
        """Close every connection not in use now (the engines stay, and connect again when next used)."""
        if self._lock.acquire(timeout=10):
            try:
                for engine in self._engines.values():
                    engine.dispose()
            finally:
                self._lock.release()

    def _forget(self) -> None:
        """In a forked child: the parent's engines are left alone, referenced for good, and this one starts empty."""
        _CROSSED_A_FORK.extend(self._engines.values())
        self._engines = OrderedDict()
        self._files = {}
        self._lock = threading.Lock()  # another thread of the parent may have held it at the fork
        self._pid = os.getpid()

    def dispose(self) -> None:
        with self._lock:
            if os.getpid() != self._pid:
                self._forget()
                return
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
            self._files.clear()


def _identity(path: str) -> Optional[tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _not_mid_transaction(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    # a connection handed back mid-transaction (an interrupt raised inside the pool's own check-in, as the threaded
    # runtime raises them in running steps) would hold SQLite's write lock for every other process: replace it
    if dbapi_connection.in_transaction:
        raise sa.exc.DisconnectionError("an SQLite connection came back to the pool inside a transaction")


_ALL: "weakref.WeakSet[_KeptEngines]" = weakref.WeakSet()
_CROSSED_A_FORK: list[Engine] = []  # a forked child's inherited engines, never closed there


def _before_fork() -> None:
    for kept in list(_ALL):
        kept.close_idle()


def _after_fork_in_child() -> None:
    for kept in list(_ALL):
        kept._forget()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's :class:`SqliteEventLogStorage`, keeping one open connection per database (see the module).

    Args:
        base_dir: the folder of the event databases (``$DAGSTER_HOME/history/runs``), as for Dagster's.
        synchronous: SQLite's ``synchronous`` for every commit: ``NORMAL`` (default) or ``FULL``.
    """

    def __init__(self, base_dir: str, inst_data: Optional[ConfigurableClassData] = None, synchronous: str = "NORMAL"):
        self._kept = _KeptEngines(synchronous, OPEN_RUN_DATABASES, always=INDEX_SHARD_NAME)
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def config_type(cls) -> Any:
        return _config_type()

    @classmethod
    def from_config_value(cls, inst_data: Optional[ConfigurableClassData], config_value: Any) -> Any:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # as Dagster's (one lock per storage, a database created on first use), on a kept engine
        with self._db_lock:
            engine, fresh = self._kept.get(shard, self.conn_string_for_shard(shard), self.path_for_shard(shard))
            if fresh:
                self._initialized_dbs.discard(shard)  # a file deleted meanwhile is made again, tables and all
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def wipe(self) -> None:
        self._kept.dispose()  # Dagster's wipe deletes the run databases: none may stay open, written to unseen
        super().wipe()

    # Dagster's SQLite storage tells watchers (the UI's live run log) of new events by watching the run's .db
    # file change. In WAL mode a commit writes only the -wal file, and a kept connection rarely checkpoints into
    # the .db: so watchers poll, as they do on Postgres.
    @cached_property
    def _poller(self) -> SqlPollingEventWatcher:
        return SqlPollingEventWatcher(self)

    def watch(self, run_id: str, cursor: Optional[str], callback: Any) -> None:
        self._poller.watch_run(run_id, cursor, callback)

    def end_watch(self, run_id: str, handler: Any) -> None:
        self._poller.unwatch_run(run_id, handler)

    def dispose(self) -> None:
        if "_poller" in self.__dict__:
            self._poller.close()
        self._kept.dispose()
        super().dispose()


class PooledSqliteRunStorage(SqliteRunStorage):
    """Dagster's :class:`SqliteRunStorage` (runs, tags, dynamic partitions), its connection kept open."""

    def __init__(self, conn_string: str, inst_data: Optional[ConfigurableClassData] = None):
        self._kept = _KeptEngines("NORMAL", 0, always="runs")
        self._path = sa.engine.make_url(conn_string).database or ""
        super().__init__(conn_string, inst_data)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        engine, _ = self._kept.get("runs", self._conn_string, self._path)
        with engine.connect() as conn:
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self._kept.dispose()
        super().dispose()


class VidintelSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (runs, events, schedules under ``base_dir``) with the pooled event log and run
    storage above (schedules as Dagster's).

    Args:
        base_dir: the instance's folder, as for Dagster's ``storage: sqlite``.
        synchronous: SQLite's ``synchronous`` for the event and run databases: ``NORMAL`` (default) or ``FULL``.
    """

    def __init__(self, base_dir: str, inst_data: Optional[ConfigurableClassData] = None, synchronous: str = "NORMAL"):
        # DagsterSqliteStorage.__init__, with the event log swapped (calling it would open Dagster's first)
        self.base_dir = base_dir
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir), synchronous=synchronous)
        self._run_storage = PooledSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._run_storage._kept.set_synchronous(synchronous)  # its from_local may have connected already
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        DagsterStorage.__init__(self)  # type: ignore[arg-type]

    @classmethod
    def config_type(cls) -> Any:
        return _config_type()

    @classmethod
    def from_config_value(cls, inst_data: Optional[ConfigurableClassData], config_value: Any) -> Any:
        os.makedirs(config_value["base_dir"], exist_ok=True)
        return cls(inst_data=inst_data, **config_value)
