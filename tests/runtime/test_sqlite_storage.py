"""The embedded instance's SQLite storage: connections kept, commits at synchronous=NORMAL, Dagster's files.

Real Dagster instances on temporary homes: runs materialize real assets; what they stored is read back through
Dagster's own plain SQLite storage, from threads, a forked child and a second process writing at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pytest

from vidintel_pipeline.runtime.instance import _EARLIER_DAGSTER_YAML, DAGSTER_YAML, ensure_instance_home
from vidintel_pipeline.runtime.sqlite_storage import (
    OPEN_RUN_DATABASES,
    PooledSqliteEventLogStorage,
    PooledSqliteRunStorage,
)

parts = dg.StaticPartitionsDefinition([f"p{i}" for i in range(8)])


@dg.asset(partitions_def=parts)
def numbers(context) -> None:
    context.log.info(f"partition {context.partition_key}")


@pytest.fixture
def make_home(tmp_path, monkeypatch):
    """A Dagster home under tmp_path with this dagster.yaml, made current (its storage is at {env: DAGSTER_HOME})."""

    def make(name: str = "dagster", text: str = DAGSTER_YAML) -> Path:
        home = tmp_path / name
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text(text)
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        return home

    return make


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))


def _plain(tmp_path: Path, home: Path) -> dg.DagsterInstance:
    """Dagster's default SQLite storage over the same folder."""
    other = tmp_path / "plain"
    other.mkdir(exist_ok=True)
    (other / "dagster.yaml").write_text(f"telemetry:\n  enabled: false\nstorage:\n  sqlite:\n    base_dir: {home}\n")
    return dg.DagsterInstance.from_config(str(other))


def _materialized(instance: dg.DagsterInstance) -> set[str]:
    return set(instance.get_materialized_partitions(dg.AssetKey("numbers")))


def _open_databases(folder) -> set[str]:
    """The SQLite database files under ``folder`` this process has open (from /proc/self/fd)."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder) + os.sep) and target.endswith(".db"):
            out.add(target)
    return out


def _synchronous(connection) -> int:
    with connection as conn:
        return conn.exec_driver_sql("PRAGMA synchronous").scalar()


def test_runs_are_stored_in_dagsters_files_on_kept_connections(tmp_path, make_home):
    home = make_home()
    with _instance(home) as instance:
        events, runs = instance.event_log_storage, instance.run_storage
        assert isinstance(events, PooledSqliteEventLogStorage) and isinstance(runs, PooledSqliteRunStorage)
        for key in ("p0", "p1"):
            assert dg.materialize([numbers], instance=instance, partition_key=key).success
        # one DBAPI connection per database, reused from event to event (Dagster's opens one per event)
        with events.index_connection() as a:
            first = a.connection.dbapi_connection
        with events.index_connection() as b:
            assert b.connection.dbapi_connection is first
        run_id = instance.get_runs()[0].run_id
        with events.run_connection(run_id) as a:
            first = a.connection.dbapi_connection
        with events.run_connection(run_id) as b:
            assert b.connection.dbapi_connection is first
        assert _synchronous(events.index_connection()) == 1  # NORMAL
        assert _synchronous(runs.connect()) == 1
        run_ids = {r.run_id for r in instance.get_runs()}
    assert (home / "history/runs/index.db").exists() and (home / "history/runs.db").exists()
    with _plain(tmp_path, home) as plain:  # interchangeable: Dagster's own storage reads every run and event
        assert {r.run_id for r in plain.get_runs()} == run_ids and len(run_ids) == 2
        assert _materialized(plain) == {"p0", "p1"}
        logs = [e.user_message for rid in run_ids for e in plain.all_logs(rid)]
        assert "partition p0" in logs and "partition p1" in logs


def test_synchronous_full_is_honoured_and_a_bad_value_is_a_clear_error(make_home):
    full = DAGSTER_YAML.replace(
        "base_dir: {env: DAGSTER_HOME}", "base_dir: {env: DAGSTER_HOME}\n      synchronous: FULL"
    )
    assert full != DAGSTER_YAML
    home = make_home("full", full)
    with _instance(home) as instance:
        assert dg.materialize([numbers], instance=instance, partition_key="p2").success
        assert _synchronous(instance.event_log_storage.index_connection()) == 2
        assert _synchronous(instance.run_storage.connect()) == 2
    bad = make_home("bad", full.replace("synchronous: FULL", "synchronous: EXTRA"))
    with pytest.raises(Exception, match="synchronous must be one of NORMAL, FULL, not 'EXTRA'"):
        _instance(bad).event_log_storage  # noqa: B018


def test_open_run_databases_are_bounded_and_a_wipe_closes_them(tmp_path, make_home):
    home = make_home()
    with _instance(home) as instance:
        for i in range(OPEN_RUN_DATABASES + 3):
            assert dg.materialize([numbers], instance=instance, partition_key=f"p{i}").success
        kept = instance.event_log_storage._kept._engines
        assert "index" in kept and len(kept) == OPEN_RUN_DATABASES + 1
        # the evicted ones are closed, not only forgotten: the index and the kept run databases are all that is open
        assert len(_open_databases(home / "history/runs")) == OPEN_RUN_DATABASES + 1
        assert _materialized(instance) == {f"p{i}" for i in range(OPEN_RUN_DATABASES + 3)}
        # a wipe deletes the run databases: none stays open (an open one would take writes into an unlinked file)
        instance.wipe()
        assert list(kept) == ["index"] and not instance.get_runs()  # Dagster's wipe reopens the index
        result = dg.materialize([numbers], instance=instance, partition_key="p1")
    with _plain(tmp_path, home) as plain:
        assert _materialized(plain) == {"p1"} and "partition p1" in {e.message for e in plain.all_logs(result.run_id)}


_CHILD = """
import sys, dagster as dg
sys.path.insert(0, sys.argv[2])
from test_sqlite_storage import numbers
with dg.DagsterInstance.from_config(sys.argv[1]) as instance:
    for key in ("p5", "p6", "p7"):
        assert dg.materialize([numbers], instance=instance, partition_key=key).success
"""


_FORKER = """
import multiprocessing, os, sys, threading, dagster as dg
sys.path.insert(0, sys.argv[2])
from test_sqlite_storage import _open_databases, numbers
runs = os.path.join(os.environ["DAGSTER_HOME"], "history", "runs")

def child(instance):
    inherited = _open_databases(runs)  # none of the parent's connections may be open here
    ok = dg.materialize([numbers], instance=instance, partition_key="p3").success
    os._exit(0 if ok and not inherited else 1)

with dg.DagsterInstance.from_config(sys.argv[1]) as instance:
    assert dg.materialize([numbers], instance=instance, partition_key="p4").success
    assert _open_databases(runs), "the parent holds no connection: nothing to test"
    # a fresh interpreter, so the fork happens with no other thread running (one can inherit a held lock)
    assert threading.active_count() == 1, threading.enumerate()
    p = multiprocessing.get_context("fork").Process(target=child, args=(instance,), daemon=True)
    p.start()
    p.join(120)
    assert p.exitcode == 0, p.exitcode
    assert dg.materialize([numbers], instance=instance, partition_key="p4").success  # the parent's still work
"""


def test_threads_a_fork_and_another_process_write_at_once(tmp_path, make_home):
    home = make_home()
    with _instance(home) as instance:
        first = dg.materialize([numbers], instance=instance, partition_key="p0")
        assert first.success
        assert _open_databases(home / "history/runs")  # connections open in this process now
        run = instance.get_run_by_id(first.run_id)
        # a forked child on its parent's instance object, in a process of its own (this one has other tests' threads)
        forker = subprocess.Popen([sys.executable, "-c", _FORKER, str(home), str(Path(__file__).parent)])
        other = subprocess.Popen([sys.executable, "-c", _CHILD, str(home), str(Path(__file__).parent)])
        try:
            # steps of one run in threads, as the threaded runtime runs them, each storing events (several runs
            # started in threads of one process at once can deadlock in Dagster's logging set-up, ours or not)
            errors: list[BaseException] = []

            def work(k: int) -> None:
                try:
                    for i in range(40):
                        instance.report_engine_event(f"thread {k} event {i}", run)
                except BaseException as exc:  # reported below
                    errors.append(exc)

            threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert not any(t.is_alive() for t in threads) and not errors, errors
            assert other.wait(120) == 0 and forker.wait(120) == 0
        finally:
            for proc in (forker, other):
                proc.kill()
        assert dg.materialize([numbers], instance=instance, partition_key="p0").success  # the parent's still work
    with _plain(tmp_path, home) as plain:
        assert _materialized(plain) == {"p0", "p3", "p4", "p5", "p6", "p7"}
        assert len(plain.get_runs()) == 8
        logs = {e.message for e in plain.all_logs(run.run_id)}
        assert {f"thread {k} event {i}" for k in range(3) for i in range(40)} <= logs


_WRITER = """
import sys, dagster as dg
with dg.DagsterInstance.from_config(sys.argv[1]) as instance:
    run = instance.get_run_by_id(sys.argv[2])
    for i in range(5):
        instance.report_engine_event(f"from another process {i}", run)
"""


def test_a_watcher_sees_another_processs_events_and_a_database_deleted_elsewhere_is_made_again(tmp_path, make_home):
    home = make_home()
    with _instance(home) as instance:
        result = dg.materialize([numbers], instance=instance, partition_key="p0")
        seen: list[str] = []
        got = threading.Event()

        def callback(entry, _cursor) -> None:
            seen.append(entry.message)
            if sum(m.startswith("from another process") for m in seen) == 5:
                got.set()

        # the UI's live run log: a watch on the run, events written by a run worker in another process
        instance.event_log_storage.watch(result.run_id, None, callback)
        try:
            subprocess.run([sys.executable, "-c", _WRITER, str(home), result.run_id], check=True, timeout=120)
            assert got.wait(30), seen
        finally:
            instance.event_log_storage.end_watch(result.run_id, callback)
        # another process deletes the run's database (`dagster instance wipe` does) while this one has it open
        for suffix in ("", "-wal", "-shm"):
            Path(f"{instance.event_log_storage.path_for_shard(result.run_id)}{suffix}").unlink(missing_ok=True)
        instance.report_engine_event("after the file was deleted", instance.get_run_by_id(result.run_id))
    with _plain(tmp_path, home) as plain:  # the event is in a new file, not in the deleted one
        assert "after the file was deleted" in {e.message for e in plain.all_logs(result.run_id)}


def test_a_home_from_an_earlier_version_gets_the_storage_and_an_edited_one_is_kept(make_home):
    home = make_home("earlier", _EARLIER_DAGSTER_YAML)
    ensure_instance_home()
    assert (home / "dagster.yaml").read_text() == DAGSTER_YAML
    edited = _EARLIER_DAGSTER_YAML.replace("max_concurrent_runs: 2", "max_concurrent_runs: 4")
    home = make_home("edited", edited)
    ensure_instance_home()
    assert (home / "dagster.yaml").read_text() == edited
    assert not list(home.glob(".dagster.yaml.*"))
