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
``synchronous=FULL`` and 39.5 and 40.0 s at ``NORMAL``. A crash of the process loses nothing; a power cut can
lose the last events committed before it, never corrupt the database (SQLite's documented WAL guarantee), and
what a step wrote to storage is synced by the step itself (a video whose materialization event was lost is
ingested again). Set ``synchronous: FULL`` in the storage's config to sync every event as Dagster's default does.

Tables, files and folders are Dagster's (``$DAGSTER_HOME/history/runs/*.db``): a home can switch between this
storage and Dagster's plain ``sqlite`` storage and keep its history. In ``dagster.yaml``::

    storage:
      custom:
        module: vidintel_pipeline.runtime.sqlite_storage
        class: VidintelSqliteStorage
        config:
          base_dir: {env: DAGSTER_HOME}
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import sqlalchemy as sa
from dagster._config import Field, StringSource
from dagster._core.storage.base_storage import DagsterStorage
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

OPEN_RUN_DATABASES = 4  # run databases kept open per process; runs a process writes at once, with room to spare
SYNCHRONOUS = ("NORMAL", "FULL")


class _KeptEngines:
    """SQLAlchemy engines by database, each keeping one connection open, the least recently used closed beyond
    ``keep``; a forked child drops its parent's without closing them (they are the parent's to close)."""

    def __init__(self, synchronous: str, keep: int, always: str):
        self._keep = keep
        self._always = always  # the database never closed for another (the index, the run list)
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self.synchronous = ""
        self.set_synchronous(synchronous)

    def set_synchronous(self, value: str) -> None:
        """SQLite's ``synchronous`` for this storage's connections (those already open are closed)."""
        if value.upper() not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}, not {value!r}")
        if value.upper() != self.synchronous:
            self.dispose()
            self.synchronous = value.upper()

    def get(self, name: str, url: str) -> Engine:
        with self._lock:
            if os.getpid() != self._pid:
                for inherited in self._engines.values():
                    inherited.dispose(close=False)
                self._engines.clear()
                self._pid = os.getpid()
            kept = self._engines.get(name)
            if kept is not None:
                self._engines.move_to_end(name)
                return kept
            engine = sa.create_engine(
                url,
                poolclass=QueuePool,
                pool_size=1,  # the one kept open; another thread's, or one borrowed inside another, is an overflow:
                max_overflow=-1,  # opened and closed as Dagster's are, never waited for
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            sa.event.listen(engine, "connect", self._on_connect)
            self._engines[name] = engine
            others = [k for k in self._engines if k != self._always]
            for old in others[: max(0, len(others) - self._keep)]:
                self._engines.pop(old).dispose()
            return engine

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA synchronous={self.synchronous}")
        cursor.close()

    def dispose(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


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
        return {"base_dir": StringSource, "synchronous": Field(str, is_required=False, default_value="NORMAL")}

    @classmethod
    def from_config_value(cls, inst_data: Optional[ConfigurableClassData], config_value: Any) -> Any:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # as Dagster's (one lock per storage, a database created on first use), on a kept engine
        with self._db_lock:
            engine = self._kept.get(shard, self.conn_string_for_shard(shard))
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def wipe(self) -> None:
        self._kept.dispose()  # Dagster's wipe deletes the run databases: none may stay open, written to unseen
        super().wipe()

    def dispose(self) -> None:
        self._kept.dispose()
        super().dispose()


class PooledSqliteRunStorage(SqliteRunStorage):
    """Dagster's :class:`SqliteRunStorage` (runs, tags, dynamic partitions), its connection kept open."""

    def __init__(self, conn_string: str, inst_data: Optional[ConfigurableClassData] = None):
        self._kept = _KeptEngines("NORMAL", 0, always="runs")
        super().__init__(conn_string, inst_data)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._kept.get("runs", self._conn_string).connect() as conn:
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self._kept.dispose()
        super().dispose()


class VidintelSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (runs, events, schedules under ``base_dir``) with the pooled event log above.

    Args:
        base_dir: the instance's folder, as for Dagster's ``storage: sqlite``.
        synchronous: passed to :class:`PooledSqliteEventLogStorage`.
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
        return {"base_dir": StringSource, "synchronous": Field(str, is_required=False, default_value="NORMAL")}

    @classmethod
    def from_config_value(cls, inst_data: Optional[ConfigurableClassData], config_value: Any) -> Any:
        os.makedirs(config_value["base_dir"], exist_ok=True)
        return cls(inst_data=inst_data, **config_value)
