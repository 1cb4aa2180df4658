"""Speed of the torch plugins on CUDA against the CPU of the same machine (issue 7's device check; not a test).

Runs the project's own plugins, unchanged: ``openai_whisper`` on the converted ``tiny.en`` checkpoint and
``transnetv2`` fed with frames exactly as the shared decode hands them out. The frames come from a clip
``samples.render`` made with known cuts, decoded once here and saved (``--save-frames``), so the GPU machine
needs no decoder. Where torch sees no GPU only the CPU rows are printed.

    python benchmarks/gpu_speedup.py --save-frames clip.npz            # here: render, decode, save planes + truth
    python benchmarks/gpu_speedup.py --frames clip.npz --checkpoint tiny.en.pt --json out.json   # there
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidintel_pipeline.media.frames import Frame  # noqa: E402
from vidintel_pipeline.plugin_api.contracts import AnalysisConfig, ChunkInfo, TranscriptionConfig  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "vidintel_pipeline" / "media" / "sample_media"


def save_frames(out: Path) -> None:
    """Render the transitions clip of tests/plugins/test_gpu_plugins.py, decode it once, keep its planes and truth."""
    from vidintel_pipeline.media.decode import iter_frames
    from vidintel_pipeline.media.samples import Shot, render

    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "transitions.mp4"
        shots = [Shot("testsrc", 4.0), Shot("life", 4.0), Shot("cells", 4.0, "dissolve", 1.0), Shot("gradient", 5.5)]
        truth = render(clip, shots, flashes=(1.2,))
        ys, us, vs, ts = [], [], [], []
        for f in iter_frames(clip):
            ys.append(f.y.copy()), us.append(f.u.copy()), vs.append(f.v.copy()), ts.append(f.time_s)
    np.savez_compressed(
        out,
        y=np.stack(ys),
        u=np.stack(us),
        v=np.stack(vs),
        t=np.array(ts),
        truth=json.dumps({"fps": truth.fps, "cuts": truth.cuts, "transitions": truth.transitions}),
    )
    print(f"{out}: {len(ts)} frames {ys[0].shape[1]}x{ys[0].shape[0]}, {out.stat().st_size / 2**20:.1f} MB")


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def wer(ref: str, hyp: str) -> float:
    """Word error rate by edit distance (jiwer, which the tests use, is not on the GPU machine)."""
    r, h = words(ref), words(hyp)
    d = list(range(len(h) + 1))
    for i, a in enumerate(r, 1):
        prev, d[0] = d[0], i
        for j, b in enumerate(h, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (a != b))
    return d[len(h)] / max(1, len(r))


def long_wav(path: Path, seconds: float) -> float:
    """The English fixtures one after another, with half-second gaps, up to ``seconds``: a steady-state load."""
    from vidintel_pipeline.media.audio import read_wav

    parts, total = [], 0
    while total < seconds * 16000:
        for name in ("speech_a", "speech_b", "speech_c"):
            pcm, _ = read_wav(FIXTURES / f"{name}.wav")
            parts += [pcm, np.zeros(8000, np.float32)]
            total += len(pcm) + 8000
    pcm = np.concatenate(parts)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())
    return len(pcm) / 16000


# the plugin's default (greedy, word timestamps), then what each costs: words off, beam search of 5
VARIANTS = {
    "default": {"beam_size": None, "words": True},
    "no-words": {"beam_size": None, "words": False},
    "beam5": {"beam_size": 5, "words": True},
}


def bench_whisper(checkpoint: str, devices: list[str], seconds: float) -> list[dict]:
    from vidintel.plugins.openai_whisper_local import OpenAIWhisperPlugin

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        audio_s = long_wav(wav, seconds)
        for device, variant in [(d, v) for d in devices for v in VARIANTS]:
            plugin = OpenAIWhisperPlugin(model=checkpoint, device=device, beam_size=VARIANTS[variant]["beam_size"])
            config = TranscriptionConfig(word_timestamps=VARIANTS[variant]["words"])
            plugin.transcribe_sync(str(FIXTURES / "speech_a.wav"), config)  # load + warm up
            fixture_wer, t_fix = {}, time.perf_counter()
            for name in ("speech_a", "speech_b", "speech_c"):
                got = plugin.transcribe_sync(str(FIXTURES / f"{name}.wav"), config)
                fixture_wer[name] = round(wer((FIXTURES / f"{name}.txt").read_text(), got.text), 3)
            t_fix = time.perf_counter() - t_fix
            t0 = time.perf_counter()
            res = plugin.transcribe_sync(str(wav), config)
            wall = time.perf_counter() - t0
            n_words = sum(len(s.words) for s in res.segments)
            rows.append(
                {
                    "plugin": f"openai_whisper {variant}",
                    "device": device,
                    "audio_s": round(audio_s, 1),
                    "wall_s": round(wall, 2),
                    "x_realtime": round(audio_s / wall, 1),
                    "words": n_words,
                    "fixtures_wall_s": round(t_fix, 2),
                    "fixture_wer": fixture_wer,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            if variant == "default":
                rows.append(encoder_row(plugin._model(), device))
                print(json.dumps(rows[-1]), flush=True)
    return rows


def encoder_row(model, device: str, batch: int = 8, reps: int = 5) -> dict:
    """The audio encoder alone on ``batch`` 30-second windows: the compute-bound part of Whisper."""
    import torch

    mel = torch.randn(batch, model.dims.n_mels, 3000, device=device) * 0.5
    mel = mel.half() if device == "cuda" else mel
    with torch.no_grad():
        model.encoder(mel)
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            model.encoder(mel)
        if device == "cuda":
            torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) / reps
    return {
        "plugin": "whisper encoder",
        "device": device,
        "audio_s": batch * 30.0,
        "wall_s": round(wall, 4),
        "x_realtime": round(batch * 30 / wall, 1),
    }


def bench_transnet(frames: Path, devices: list[str], loops: int) -> list[dict]:
    from vidintel.plugins.transnetv2_shots import TransNetV2Plugin

    data = np.load(frames)
    truth = json.loads(str(data["truth"]))
    y, u, v, t = data["y"], data["u"], data["v"], data["t"]
    n, period = len(t), float(t[-1] + 1 / truth["fps"])
    stream = [
        Frame.from_planes(k * n + i, round(k * period + float(t[i]), 6), y[i], u[i], v[i])
        for k in range(loops)
        for i in range(n)
    ]
    # where the clip starts over, its last shot cuts to its first: a real cut too
    truth_cuts = sorted(
        [k * period + c for k in range(loops) for c in truth["cuts"]] + [k * period for k in range(1, loops)]
    )
    rows = []
    for device, batch in [(d, b) for d in devices for b in ((4, 16) if d == "cuda" else (4,))]:
        chunk = ChunkInfo(
            project_id="bench",
            video_id="clip",
            path="frames.npz",
            start_s=0,
            end_s=loops * period,
            fps=truth["fps"],
            width=y.shape[2],
            height=y.shape[1],
        )
        for warm in (True, False):
            plugin = TransNetV2Plugin(device=device, batch_windows=batch)
            for f in stream:  # Frame caches its thumbnail: start every pass from fresh frames
                f._small = None
            t0 = time.perf_counter()
            plugin.begin(chunk, AnalysisConfig())
            for f in stream[: 300 if warm else None]:
                plugin.process(f)
            markers = plugin.end()
            wall = time.perf_counter() - t0
        cuts = sorted(m.start_s for m in markers if m.label == "cut")
        hit = sum(any(abs(c - tc) <= 1 / truth["fps"] + 1e-6 for c in cuts) for tc in truth_cuts)
        rows.append(
            {
                "plugin": "transnetv2",
                "device": device,
                "batch_windows": batch,
                "frames": len(stream),
                "wall_s": round(wall, 2),
                "fps": round(len(stream) / wall, 1),
                "x_realtime": round(len(stream) / truth["fps"] / wall, 1),
                "cuts_found": len(cuts),
                "cuts_true": len(truth_cuts),
                "cuts_within_1_frame": hit,
                "gradual_found": sum(m.label == "dissolve" for m in markers),
                "gradual_true": loops * len(truth["transitions"]),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save-frames", type=Path)
    ap.add_argument("--frames", type=Path)
    ap.add_argument("--checkpoint")
    ap.add_argument("--audio-seconds", type=float, default=120.0)
    ap.add_argument("--loops", type=int, default=8, help="play the clip this many times for TransNetV2 (steady state)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--cpu-threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.save_frames:
        save_frames(args.save_frames)
        return 0
    import torch

    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    info = {
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if "cuda" in devices else None,
        "cpu_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(info), flush=True)
    rows = []
    if args.frames:
        rows += bench_transnet(args.frames, devices, args.loops)
    if args.checkpoint:
        rows += bench_whisper(args.checkpoint, devices, args.audio_seconds)
    print(f"\n{'plugin':<25}{'device':<7}{'wall s':>8}{'x realtime':>12}  speed-up vs cpu")
    base = {r["plugin"]: r["wall_s"] for r in rows if r["device"] == "cpu"}
    for r in rows:
        tag = f"{r['plugin']}" + (f" b{r['batch_windows']}" if "batch_windows" in r else "")
        print(f"{tag:<25}{r['device']:<7}{r['wall_s']:>8}{r['x_realtime']:>12}  {base[r['plugin']] / r['wall_s']:.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"info": info, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
