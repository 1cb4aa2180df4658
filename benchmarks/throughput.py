"""`make throughput`: videos per minute through the daemon for one drop of short clips, per executor.

Each configuration gets a fresh instance on this machine (SQLite, the embedded default's queue of 2 runs), the
daemon, and, for Celery, Redis on loopback and 1 or 2 dagster-celery workers on the default queue (2 processes
each). The clips (rendered once: 8 s, 640x360, three shots and a spoken sentence, each distinct) are copied into
``incoming/bench/`` at once; ``new_video_sensor`` picks them up, and the clock stops when the last run ends.
Prints one JSON line per configuration, then a table. A benchmark, not a test: the figures go in deploy/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from distributed import BIN, Cluster, celery_config  # noqa: E402

SHOTS = ["testsrc", "life", "gradient", "cells", "testsrc_warm", "bars"]
SPEECH = ["speech_a", "speech_b", "speech_c"]


def clips(folder: Path, n: int) -> list[Path]:
    """``n`` distinct 8 s clips (rendered once into ``folder``)."""
    from vidintel_pipeline.media.samples import Shot, render

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = folder / f"clip{i:02d}.mp4"
        if not path.exists():
            shots = [Shot(SHOTS[(i + k) % len(SHOTS)], d) for k, d in enumerate((2.0 + (i % 3) * 0.5, 3.0, 2.5))]
            render(path, shots, speech=((SPEECH[i % len(SPEECH)], 0.4 + (i % 4) * 0.3),))
        out.append(path)
    return out


def measure(executor: str, workers: int, videos: list[Path], timeout_s: float) -> dict[str, Any]:
    import dagster as dg

    home = Path(tempfile.mkdtemp(prefix=f"vidintel-throughput-{executor}{workers}-"))
    env = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        VIDINTEL_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        VIDINTEL_EXECUTOR=executor,
        VIDINTEL_SENSOR_SETTLE_S="1",
        VIDINTEL_SENSOR_INTERVAL_S="3",
    )
    cluster = Cluster(home, env)
    os.environ.update({k: env[k] for k in ("VIDINTEL_HOME", "DAGSTER_HOME")})
    from vidintel_pipeline.runtime.instance import ensure_instance_home, get_instance

    ensure_instance_home()
    instance = get_instance()
    try:
        if executor == "celery":
            broker = cluster.redis()
            cluster.env["VIDINTEL_CELERY_BROKER"] = broker
            config = celery_config(home, broker)
            for w in range(workers):
                cluster.worker(f"worker{w}", f"cpu{w}", config, "dagster", 2)
        cluster.daemon(instance, "SENSOR")
        inbox = home / "data/ingest/incoming/bench"
        inbox.mkdir(parents=True)
        t0 = time.time()
        for v in videos:
            shutil.copy(v, inbox / v.name)
        while True:
            runs = instance.get_run_records(dg.RunsFilter(job_name="ingest_video"))
            finished = [r for r in runs if r.dagster_run.is_finished]
            if len(finished) >= len(videos):
                break
            if time.time() - t0 > timeout_s:
                raise SystemExit(f"{len(finished)} of {len(videos)} runs finished after {timeout_s:.0f} s")
            time.sleep(1)
        wall = max(r.end_time or 0.0 for r in finished) - t0
        ok = sum(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in finished)
        per_run = sorted((r.end_time or 0.0) - (r.start_time or 0.0) for r in finished)
        return {
            "executor": executor,
            "celery_workers": workers,
            "videos": len(videos),
            "succeeded": ok,
            "wall_s": round(wall, 1),
            "videos_per_minute": round(60 * len(videos) / wall, 2),
            "run_s_median": round(per_run[len(per_run) // 2], 1),
            "home": str(home),
        }
    finally:
        cluster.stop_all()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--configs", default="multiprocess:0,celery:1,celery:2", help="executor:celery workers, ...")
    ap.add_argument("--timeout", type=float, default=1200)
    args = ap.parse_args(argv)
    videos = clips(Path.home() / ".cache/vidintel/throughput-clips", args.clips)
    rows = []
    for item in args.configs.split(","):
        executor, workers = item.split(":")
        if executor == "celery" and not shutil.which("redis-server"):
            raise SystemExit("redis-server is not on PATH: `make redis` installs Debian's redis-server as root")
        row = measure(executor, int(workers), videos, args.timeout)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\n{'executor':<14}{'workers':>8}{'videos':>8}{'ok':>5}{'wall s':>9}{'videos/min':>12}{'median run s':>14}")
    for r in rows:
        print(
            f"{r['executor']:<14}{r['celery_workers']:>8}{r['videos']:>8}{r['succeeded']:>5}{r['wall_s']:>9}"
            f"{r['videos_per_minute']:>12}{r['run_s_median']:>14}"
        )
    return 0 if all(r["succeeded"] == r["videos"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
