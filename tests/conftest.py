"""Shared fixtures: rendered media with known truth, and an isolated vidintel home + Dagster instance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidintel_pipeline.media.samples import Shot, Truth, render, render_demo


def pytest_addoption(parser):
    parser.addoption("--reliability-json", default=None, help="write the reliability matrix's outcomes to this file")


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory):
    """Tests never touch the developer's ./.vidintel: the whole session gets a private, existing home."""
    home = tmp_path_factory.mktemp("vidintel-home")
    (home / "dagster").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDINTEL_HOME", str(home))
        mp.setenv("DAGSTER_HOME", str(home / "dagster"))
        yield home


@pytest.fixture(scope="session")
def distributed_script():
    """``scripts/distributed.py`` as a module: its ``Cluster`` starts (and stops) a real broker, workers and daemon."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("distributed", Path(__file__).parents[1] / "scripts/distributed.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tone_clip():
    """A function rendering a tiny H.264 + AAC clip of ``seconds`` (96x54 test pattern, a 440 Hz tone) to ``path``."""
    import subprocess

    from vidintel_pipeline.media.ffmpeg import ffmpeg_exe

    def render(path: Path, seconds: int) -> Path:
        subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
             f"testsrc2=s=96x54:r=25:d={seconds}", "-f", "lavfi", "-i", f"sine=f=440:d={seconds}",
             "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", str(path)],
            check=True,
        )  # fmt: skip
        return path

    return render


@pytest.fixture(scope="session")
def demo_video(tmp_path_factory) -> tuple[Path, Truth]:
    """The demo sample: cuts, a dissolve, a fade through black, a face, bars, black, a flash, speech."""
    path = tmp_path_factory.mktemp("media") / "demo.mp4"
    return path, render_demo(path)


@pytest.fixture(scope="session")
def hard_video(tmp_path_factory) -> tuple[Path, Truth]:
    """The hard cases: a fast pan, a low-contrast cut, a same-picture reframe, flashes (one just before a fade-in)."""
    path = tmp_path_factory.mktemp("media") / "hard.mp4"
    shots = [
        Shot("testsrc", 2.0),
        Shot("pan", 3.0),  # cut, then 3 s of fast panning (must not cut)
        Shot("lowcontrast_a", 2.0),  # cut
        Shot("lowcontrast_b", 2.0),  # low-contrast cut
        Shot("reframe_wide", 2.0),  # cut
        Shot("reframe_tight", 2.0),  # same picture, tighter framing
        Shot("black", 1.0),  # cut to black, a flash in it, then a fade-in right after the flash
        Shot("testsrc_warm", 2.0, "dissolve", 0.8),
    ]
    truth = render(path, shots, flashes=(0.8, 8.6, 13.4))
    return path, truth


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A private VIDINTEL_HOME (storage + SQLite Dagster instance) for one test."""
    h = tmp_path / "home"
    monkeypatch.setenv("VIDINTEL_HOME", str(h))
    monkeypatch.setenv("DAGSTER_HOME", str(h / "dagster"))
    return h


def load_json(path: Path):
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 API server on 127.0.0.1 (a real HTTP server speaking the S3 wire protocol)."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    holder = {"server": server, "port": port, "url": f"http://127.0.0.1:{port}"}
    yield holder
    holder["server"].stop()


@pytest.fixture
def s3(s3_server, monkeypatch, request):
    """Fresh ingest and output buckets on the loopback server, selected through the standard env vars."""
    import uuid

    import boto3

    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_server["url"],
        "AWS_MAX_ATTEMPTS": "2",
        "AWS_RETRY_MODE": "standard",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3", endpoint_url=s3_server["url"], region_name="us-east-1")
    tag = uuid.uuid4().hex[:8]
    buckets = {"ingest": f"vi-in-{tag}", "output": f"vi-out-{tag}"}
    for b in buckets.values():
        client.create_bucket(Bucket=b)
    monkeypatch.setenv("S3_BUCKET", buckets["ingest"])
    monkeypatch.setenv("S3_OUTPUT_BUCKET", buckets["output"])
    return {"client": client, **buckets, "server": s3_server}
