"""The local store never follows links and never opens special files: through the store, the sensor and the CLI.

Everything here is real: symbolic links (relative, absolute, dangling, to folders), FIFOs, a Unix socket
and a device node on the file system, a SQLite Dagster instance, and ``vidintel ingest`` subprocesses.
The measured bug: a link dropped in ``incoming/acme/`` naming beta's source was adopted into acme, and
deleting the drop deleted beta's video.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pytest

from vidintel.resources import VidintelStorage
from vidintel_pipeline.defs import sensors
from vidintel_pipeline.runtime.instance import get_instance
from vidintel_pipeline.storage.local import LocalStore
from vidintel_pipeline.storage.stores import UnsafeObjectError

VIDINTEL = str(Path(sys.executable).with_name("vidintel"))
SECRET = "projects/beta/videos/v/source/secret.mp4"
SECRET_BYTES = b"\x00\x00\x00\x18ftypmp42 beta's private video" * 100


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    """Every regular file below ``root`` (links not followed) with its sha256: what must not change."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath, f)
            if stat.S_ISREG(os.lstat(p).st_mode):
                out[p.relative_to(root).as_posix()] = sha(p)
    return out


def plant_hostile_entries(root: Path, outside: Path, folder: str) -> dict[str, str]:
    """Links and special files in ``root/folder``; returns name -> what it is (the reason a skip must give)."""
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(root / SECRET, d), d / "stolen.mp4")  # relative link to beta's source
    os.symlink(root / SECRET, d / "stolen-abs.mp4")  # absolute link to it
    os.symlink(outside, d / "outside.mp4")  # a link out of the root
    os.symlink(d / "nothing-here.mp4", d / "dangling.mp4")  # a dangling link
    os.mkfifo(d / "pipe.mp4")  # a FIFO: opening it would block
    cwd = os.getcwd()
    os.chdir(d)  # bound by a relative name: a socket path is limited to 108 bytes, pytest's folders are long
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind("socket.mp4")
    finally:
        os.chdir(cwd)
    kinds = {
        "stolen.mp4": "symbolic link",
        "stolen-abs.mp4": "symbolic link",
        "outside.mp4": "symbolic link",
        "dangling.mp4": "symbolic link",
        "pipe.mp4": "FIFO",
        "socket.mp4": "socket",
    }
    try:
        os.mknod(d / "device.mp4", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
        kinds["device.mp4"] = "device"
    except PermissionError:
        pass  # not root, or a container without CAP_MKNOD: the other kinds are still checked
    return kinds


@pytest.fixture
def beta(tmp_path) -> tuple[Path, Path]:
    """A store root holding beta's secret video, and a file outside the root."""
    root = tmp_path / "store"
    (root / SECRET).parent.mkdir(parents=True)
    (root / SECRET).write_bytes(SECRET_BYTES)
    outside = tmp_path / "outside-the-store.mp4"
    outside.write_bytes(b"a file outside the store")
    return root, outside


def run_with_timeout(fn, seconds: float = 60):
    """Run ``fn`` in a daemon thread: a FIFO open that blocks fails the test instead of hanging it."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"blocked for more than {seconds} s (a FIFO was opened?)"
    if "error" in box:
        raise box["error"]
    return box["value"]


# --------------------------------------------------------------------------------------------------
# the store itself
# --------------------------------------------------------------------------------------------------


def test_listing_skips_links_and_special_files_with_the_reason(beta):
    root, outside = beta
    kinds = plant_hostile_entries(root, outside, "projects/acme/videos/v/source")
    (root / "projects/acme/videos/v/source/real.mp4").write_bytes(b"acme's own")
    os.symlink(root / "projects/beta/videos/v", root / "projects/acme/videos/linked-dir")  # a symlinked folder
    skipped: list[tuple[str, str]] = []
    store = LocalStore(root, skipped=lambda key, why: skipped.append((key, why)))
    keys = run_with_timeout(lambda: [o.key for o in store.list_objects("projects/")])
    assert keys == ["projects/acme/videos/v/source/real.mp4", SECRET]  # beta's file once, under beta only
    why = dict(skipped)
    for name, kind in kinds.items():
        assert kind in why[f"projects/acme/videos/v/source/{name}"], (name, why)
    assert "symbolic link" in why["projects/acme/videos/linked-dir"]  # reported, and not walked
    assert not any(k.startswith("projects/acme/videos/linked-dir/") for k in keys)
    # a listing that starts at a symlinked folder is refused as a whole
    skipped.clear()
    assert list(store.list_objects("projects/acme/videos/linked-dir/")) == []
    assert "symbolic link" in skipped[0][1]


def test_reads_copies_and_tool_paths_refuse_links_and_fifos(beta):
    root, outside = beta
    kinds = plant_hostile_entries(root, outside, "incoming/acme")
    store = LocalStore(root, skipped=lambda *_: None)
    for name, kind in kinds.items():
        key = f"incoming/acme/{name}"
        assert store.head(key) is None and not store.exists(key)  # not an object: head says so, never opening it
        for attempt in (
            lambda key=key: store.get_bytes(key),
            lambda key=key: store.local_path(key),
            lambda key=key: store.copy(key, "projects/acme/videos/stolen/source/x.mp4"),
        ):
            with pytest.raises(UnsafeObjectError, match=kind):
                run_with_timeout(attempt)
    assert not (root / "projects/acme").exists()  # no copy landed, not even a folder for it
    assert (root / SECRET).read_bytes() == SECRET_BYTES and outside.read_bytes() == b"a file outside the store"


def test_a_symlinked_folder_inside_the_store_is_never_used(beta):
    root, outside = beta
    (root / "projects/acme/videos").mkdir(parents=True)
    os.symlink(root / "projects/beta/videos/v", root / "projects/acme/videos/v")  # acme/v is beta's video
    os.symlink(outside.parent, root / "projects/acme/videos/out")  # a folder outside the root
    store = LocalStore(root)
    before = tree(root)
    for key in (
        "projects/acme/videos/v/source/secret.mp4",
        "projects/acme/videos/v/metadata/probe.json",
        "projects/acme/videos/out/outside-the-store.mp4",
    ):
        assert store.head(key) is None
        with pytest.raises(UnsafeObjectError, match="symbolic link"):
            store.get_bytes(key)
        with pytest.raises(UnsafeObjectError, match="symbolic link"):
            store.put_bytes(key, b"overwritten")  # a write through the link would land in beta
        with pytest.raises(UnsafeObjectError, match="symbolic link"):
            store.delete(key)  # ... and a delete would remove beta's file
        with pytest.raises(UnsafeObjectError, match="symbolic link"):
            store.staging_dir("projects/acme/videos/v/chunks/")
    assert tree(root) == before and outside.read_bytes() == b"a file outside the store"
    assert sorted(os.listdir(root / "projects/beta/videos/v")) == ["source"]  # no metadata/ or staging folder made


def test_delete_removes_the_link_never_its_target_and_writes_replace_a_link(beta):
    root, outside = beta
    d = root / "projects/acme/videos/v/source"
    d.mkdir(parents=True)
    os.symlink(root / SECRET, d / "stolen.mp4")
    os.symlink(outside, d / "outside.mp4")
    os.mkfifo(d / "pipe.mp4")
    store = LocalStore(root)
    for name in ("stolen.mp4", "outside.mp4", "pipe.mp4"):
        run_with_timeout(lambda name=name: store.delete(f"projects/acme/videos/v/source/{name}"))
        assert not os.path.lexists(d / name)
    assert (root / SECRET).read_bytes() == SECRET_BYTES and outside.read_bytes() == b"a file outside the store"
    os.symlink(root / SECRET, d / "stolen.mp4")
    store.put_bytes("projects/acme/videos/v/source/stolen.mp4", b"acme's bytes")  # replaces the name, not the target
    assert not (d / "stolen.mp4").is_symlink() and (d / "stolen.mp4").read_bytes() == b"acme's bytes"
    assert (root / SECRET).read_bytes() == SECRET_BYTES


def test_the_root_itself_may_be_a_link(beta, tmp_path):
    root, _ = beta
    alias = tmp_path / "store-alias"
    os.symlink(root, alias)
    store = LocalStore(alias)
    assert store.root == root.resolve()
    assert store.get_bytes(SECRET) == SECRET_BYTES and [o.key for o in store.list_objects("projects/")] == [SECRET]
    store.put_bytes("projects/acme/x.json", b"{}")
    assert (root / "projects/acme/x.json").read_bytes() == b"{}"


# --------------------------------------------------------------------------------------------------
# the sensor, on a real instance
# --------------------------------------------------------------------------------------------------


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _sensor_tick(instance, cursor=None, log: Lines | None = None):
    """One evaluation of the real sensor on a real instance; its context.log lines go to ``log``."""
    from vidintel_pipeline.definitions import defs

    sensor = defs.resolve_sensor_def("new_video_sensor")
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"storage": VidintelStorage()})
    if log is not None:
        ctx.log.addHandler(log)  # the sensor's logger is Dagster's own, outside the logging tree caplog sees
    return sensor(ctx)


def test_sensor_adopts_no_link_fifo_or_symlinked_folder_and_deletes_nothing_of_beta(home, tmp_path, monkeypatch):
    monkeypatch.setattr(sensors, "SETTLE_S", 0.0)
    instance = get_instance()
    root = VidintelStorage().ingest().root
    (root / SECRET).parent.mkdir(parents=True)
    (root / SECRET).write_bytes(SECRET_BYTES)
    outside = tmp_path / "outside-the-store.mp4"
    outside.write_bytes(b"a file outside the store")
    kinds = plant_hostile_entries(root, outside, "incoming/acme")
    os.symlink(root / "projects/beta/videos/v/source", root / "incoming/gamma")  # a drop folder that is a link
    (root / "incoming/acme/real drop.mp4").write_bytes(b"acme's real drop")  # the one thing to adopt
    before = {SECRET: sha(root / SECRET)}

    log = Lines()
    result = run_with_timeout(lambda: _sensor_tick(instance, log=log))
    again = run_with_timeout(lambda: _sensor_tick(instance, result.cursor))

    assert (root / SECRET).is_file() and sha(root / SECRET) == before[SECRET]
    assert outside.read_bytes() == b"a file outside the store"
    acme = sorted(
        p.relative_to(root / "projects/acme").as_posix() for p in (root / "projects/acme").rglob("*") if p.is_file()
    )
    assert acme == ["videos/real-drop/source/real drop.mp4"]  # nothing stolen was adopted
    assert not (root / "projects/gamma").exists()
    # beta's own video is found where it belongs; no acme video is made of a link
    assert sorted(r.partition_key for r in result.run_requests) == ["acme__real-drop", "beta__v"]
    assert again.run_requests == []
    for name, kind in kinds.items():  # left where they were, reported
        assert os.path.lexists(root / "incoming/acme" / name), name
        assert f"skipping 'incoming/acme/{name}'" in log.text and kind in log.text, name
    assert "skipping 'incoming/gamma'" in log.text
    assert (root / "incoming/gamma").is_symlink() and sorted(os.listdir(root / "incoming/gamma")) == ["secret.mp4"]


# --------------------------------------------------------------------------------------------------
# the CLI: it reads the path the user named (following a link, as cp does); the store side never follows
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def clip(tmp_path) -> Path:
    from vidintel_pipeline.media.samples import Shot, render

    p = tmp_path / "media" / "clip.mp4"
    p.parent.mkdir()
    render(p, [Shot("testsrc", 1.0), Shot("gradient", 1.0)], size=(160, 90))
    return p


def vidintel(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([VIDINTEL, *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def test_cli_ingests_a_linked_file_as_a_copy_and_never_deletes_through_a_planted_link(home, clip, tmp_path):
    root = home / "data/ingest"
    (root / SECRET).parent.mkdir(parents=True)
    (root / SECRET).write_bytes(SECRET_BYTES)
    source = root / "projects/acme/videos/v/source"
    source.mkdir(parents=True)
    os.symlink(root / SECRET, source / "planted.mp4")  # re-ingesting v deletes v's other sources: not this one's target
    named = tmp_path / "my link.mp4"
    os.symlink(clip, named)  # the user names a link: the CLI reads what it points at
    res = vidintel("ingest", str(named), "--project", "acme", "--video-id", "v", "--quiet", "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    stored = source / "my link.mp4"
    assert stat.S_ISREG(os.lstat(stored).st_mode) and sha(stored) == sha(clip)  # a copy in the store, not a link
    assert (root / SECRET).read_bytes() == SECRET_BYTES  # beta's video survived the re-ingest
    assert (source / "planted.mp4").is_symlink()  # skipped (and said so), not deleted
    assert "skipping 'projects/acme/videos/v/source/planted.mp4': a symbolic link" in res.stderr


def test_cli_refuses_a_project_folder_that_is_a_link_and_a_fifo_path(home, clip, tmp_path):
    root = home / "data/ingest"
    (root / SECRET).parent.mkdir(parents=True)
    (root / SECRET).write_bytes(SECRET_BYTES)
    os.symlink(root / "projects/beta", root / "projects/acme")  # acme's whole tree would be beta's
    before = tree(root / "projects/beta")
    res = vidintel("ingest", str(clip), "--project", "acme", "--video-id", "v", "--quiet")
    assert (
        res.returncode == 2
        and "refusing projects/acme/videos/v/source/clip.mp4: projects/acme is a symbolic link" in res.stderr
    ), res.stderr[-2000:]
    assert tree(root / "projects/beta") == before
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    res = vidintel("ingest", str(fifo), "--project", "acme", timeout=60)  # must not block on the FIFO
    assert res.returncode == 2 and "not a regular file" in res.stderr, res.stderr[-2000:]
