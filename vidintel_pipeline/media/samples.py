"""Synthetic videos with known ground truth, rendered by ffmpeg's lavfi sources.

Used by ``vidintel demo``, the tests and the benchmark, so every figure we report is checked against
truth we made ourselves: cut times to the frame, transitions with their spans, black frames, colour bars,
flashes, a fast pan, a drawn face (OpenCV's Haar cascade finds it) and speech from the committed fixtures.
"""

from __future__ import annotations

import json
import tempfile
import wave
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from vidintel_pipeline.media.ffmpeg import run_ffmpeg


@dataclass
class Shot:
    source: str  # key of SOURCES, or "image:<path>"
    duration: float
    transition_in: str = "cut"  # cut | dissolve | fade (through black)
    transition_s: float = 0.0


@dataclass
class Truth:
    duration_s: float
    fps: float
    cuts: list[float] = field(default_factory=list)
    transitions: list[dict] = field(default_factory=list)  # {start_s, end_s, kind}
    black: list[list[float]] = field(default_factory=list)
    bars: list[list[float]] = field(default_factory=list)
    faces: list[list[float]] = field(default_factory=list)
    flashes: list[float] = field(default_factory=list)
    pans: list[list[float]] = field(default_factory=list)
    speech: list[dict] = field(default_factory=list)  # {start_s, end_s, text, file}
    titles: list[dict] = field(default_factory=list)  # {start_s, end_s, text}: text drawn on the picture

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _sources(w: int, h: int, r: int) -> dict[str, str]:
    s = f"s={w}x{h}:r={r}"
    return {
        "testsrc": f"testsrc2={s}",
        "testsrc_warm": f"testsrc2={s},hue=h=60:s=1.3",
        "bars": f"smptebars={s}",
        "black": f"color=c=black:{s}",
        "life": f"life={s}:seed=11:mold=10:ratio=0.1:death_color=#204060:life_color=#f0c040",
        "cells": f"cellauto={s}:seed=5:rule=110,negate,colorchannelmixer=rr=0.3:gg=0.8:bb=0.5",
        "gradient": f"gradients={s}:seed=3:speed=0.01:c0=#103070:c1=#d07020",
        # two dim grey pictures a few code values apart: a cut between them changes the picture very little
        "lowcontrast_a": f"gradients={s}:seed=1:speed=0.005:c0=#585858:c1=#686868",
        "lowcontrast_b": f"gradients={s}:speed=0.005:c0=#686060:c1=#586060:seed=7",
        # same picture, two framings: a wide view, then a 1.6x crop of its centre
        "reframe_wide": f"mandelbrot=s={w}x{h}:r={r}:maxiter=60:start_scale=2.5:end_scale=2.5",
        "reframe_tight": (
            f"mandelbrot=s={w * 8 // 5}x{h * 8 // 5}:r={r}:maxiter=60:start_scale=2.5:end_scale=2.5,crop={w}:{h}"
        ),
        # a fast pan across a wide picture: 1.5 picture widths per second
        "pan": f"testsrc2=s={w * 4}x{h}:r={r},crop={w}:{h}:x='min(t*{w * 1.5},{w * 3})':y=0",
    }


def draw_face_image(path: Path, w: int, h: int) -> Path:
    """A flat cartoon face that OpenCV's frontal-face Haar cascade detects."""
    img = np.full((h, w, 3), (90, 110, 70), np.uint8)
    cx, cy, s = w // 2, h // 2, int(h * 0.5)
    cv2.ellipse(img, (cx, cy), (int(0.42 * s), int(0.55 * s)), 0, 0, 360, (150, 170, 210), -1)
    for dx in (-1, 1):
        ex = cx + int(dx * 0.18 * s)
        cv2.ellipse(img, (ex, cy - int(0.22 * s)), (int(0.11 * s), int(0.03 * s)), 0, 0, 360, (40, 40, 50), -1)
        cv2.ellipse(img, (ex, cy - int(0.12 * s)), (int(0.08 * s), int(0.045 * s)), 0, 0, 360, (30, 30, 30), -1)
        cv2.circle(img, (ex, cy - int(0.12 * s)), int(0.03 * s), (10, 10, 10), -1)
    cv2.line(
        img, (cx, cy - int(0.05 * s)), (cx - int(0.04 * s), cy + int(0.12 * s)), (110, 125, 160), max(1, int(0.03 * s))
    )
    cv2.ellipse(img, (cx, cy + int(0.28 * s)), (int(0.15 * s), int(0.04 * s)), 0, 0, 360, (60, 60, 140), -1)
    cv2.ellipse(img, (cx, cy - int(0.45 * s)), (int(0.45 * s), int(0.2 * s)), 0, 180, 360, (20, 30, 40), -1)
    cv2.imwrite(str(path), img)
    return path


def draw_title_image(path: Path, text: str, w: int, h: int) -> Path:
    """A transparent picture with ``text`` in white on a dark band in the lower third (OpenCV's own font)."""
    img = np.zeros((h, w, 4), np.uint8)
    scale = h / 300
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, max(1, int(scale * 2)))
    x, y = max(4, (w - tw) // 2), int(h * 0.8)
    cv2.rectangle(img, (x - 12, y - th - 12), (x + tw + 12, y + base + 12), (20, 20, 20, 230), -1)
    cv2.putText(
        img, text, (x, y), cv2.FONT_HERSHEY_DUPLEX, scale, (255, 255, 255, 255), max(1, int(scale * 2)), cv2.LINE_AA
    )
    cv2.imwrite(str(path), img)
    return path


def speech_fixture(name: str) -> tuple[Path, str]:
    """(wav path, exact text) of a committed speech fixture: speech_a, speech_b, speech_c (English), speech_de."""
    base = resources.files("vidintel_pipeline.media") / "sample_media"
    wav = Path(str(base / f"{name}.wav"))
    return wav, (base / f"{name}.txt").read_text().strip()


def voiced_span(wav: Path, rel_threshold: float = 0.02) -> tuple[float, float]:
    """Seconds from the file start to the first and last sample louder than 2% of the peak."""
    with wave.open(str(wav)) as wf:
        rate = wf.getframerate()
        x = np.abs(np.frombuffer(wf.readframes(wf.getnframes()), "<i2").astype(np.float32))
    loud = np.nonzero(x > rel_threshold * x.max())[0]
    return float(loud[0] / rate), float(loud[-1] / rate)


def render(
    out: Path,
    shots: list[Shot],
    *,
    size: tuple[int, int] = (640, 360),
    fps: int = 25,
    flashes: tuple[float, ...] = (),
    speech: tuple[tuple[str, float], ...] = (),
    crf: int = 23,
    gop: Optional[int] = None,
    titles: tuple[tuple[str, float, float], ...] = (),
) -> Truth:
    """Render ``shots`` into an H.264/AAC MP4 at ``out`` and return its ground truth.

    ``titles`` are ``(text, start_s, end_s)`` lines drawn over the picture (for OCR).
    """
    w, h = size
    src = _sources(w, h, fps)
    frame = 1.0 / fps

    def d_in(i: int) -> float:
        return shots[i].transition_s if i < len(shots) and shots[i].transition_in != "cut" else 0.0

    # each input is rendered long enough to cover its clean part plus the transitions it takes part in
    rendered = [s.duration + (d_in(i) if i else 0.0) + d_in(i + 1) for i, s in enumerate(shots)]
    inputs: list[str] = []
    chains: list[str] = []
    n_in = 0
    for i, shot in enumerate(shots):
        if shot.source.startswith("image:"):
            inputs += ["-loop", "1", "-framerate", str(fps), "-t", f"{rendered[i]:.3f}", "-i", shot.source[6:]]
            chains.append(f"[{n_in}:v]scale={w}:{h},format=yuv420p,setsar=1,settb=1/{fps}[s{i}]")
            n_in += 1
        else:
            chains.append(
                f"{src[shot.source]},trim=duration={rendered[i]:.3f},format=yuv420p,setsar=1,settb=1/{fps}[s{i}]"
            )
    truth = Truth(duration_s=0.0, fps=fps)
    cur, length = "s0", rendered[0]
    spans: list[tuple[float, float, str]] = [(0.0, shots[0].duration, shots[0].source)]
    for i, shot in enumerate(shots[1:], start=1):
        if shot.transition_in == "cut":
            chains.append(f"[{cur}][s{i}]concat=n=2:v=1:a=0,settb=1/{fps}[c{i}]")
            truth.cuts.append(round(length, 6))
            start = length
        else:
            d = shot.transition_s
            kind = {"dissolve": "fade", "fade": "fadeblack"}[shot.transition_in]
            offset = length - d
            chains.append(
                f"[{cur}][s{i}]xfade=transition={kind}:duration={d:.3f}:offset={offset:.3f},settb=1/{fps}[c{i}]"
            )
            truth.transitions.append(
                {"start_s": round(offset, 6), "end_s": round(offset + d, 6), "kind": shot.transition_in}
            )
            start = length
            length = offset
        length += rendered[i]
        cur = f"c{i}"
        spans.append((start, start + shot.duration, shot.source))
    total = length
    truth.duration_s = round(total, 6)
    for s, e, name in spans:
        if name == "black":
            truth.black.append([round(s, 6), round(e, 6)])
        elif name == "bars":
            truth.bars.append([round(s, 6), round(e, 6)])
        elif name.startswith("image:") and "face" in name:
            truth.faces.append([round(s, 6), round(e, 6)])
        elif name == "pan":
            truth.pans.append([round(s, 6), round(e, 6)])
    video_out = cur
    if flashes:
        enable = "+".join(f"between(t,{f - frame / 2:.4f},{f + frame * 1.5:.4f})" for f in flashes)
        chains.append(f"[{cur}]drawbox=x=0:y=0:w=iw:h=ih:color=white@1:t=fill:enable='{enable}'[vflash]")
        video_out = "vflash"
        truth.flashes = [round(f, 6) for f in flashes]
    title_dir = tempfile.TemporaryDirectory() if titles else None
    for k, (text, t0, t1) in enumerate(titles):
        assert title_dir is not None  # made above whenever there are titles
        png = draw_title_image(Path(title_dir.name) / f"title{k}.png", text, w, h)
        inputs += ["-loop", "1", "-framerate", str(fps), "-t", f"{total:.3f}", "-i", str(png)]
        chains.append(
            f"[{video_out}][{n_in}:v]overlay=enable='between(t,{t0:.4f},{t1 - frame / 2:.4f})',format=yuv420p[vt{k}]"
        )
        video_out = f"vt{k}"
        n_in += 1
        truth.titles.append({"start_s": round(t0, 6), "end_s": round(t1, 6), "text": text})
    # audio: silence with speech fixtures placed at given times
    a_labels = []
    for k, (name, at) in enumerate(speech):
        wav, text = speech_fixture(name)
        inputs += ["-i", str(wav)]
        idx = n_in + k
        ms = int(at * 1000)
        chains.append(f"[{idx}:a]aresample=16000,adelay={ms}:all=1[a{k}]")
        a_labels.append(f"[a{k}]")
        lead, tail = voiced_span(wav)
        truth.speech.append(
            {"start_s": round(at + lead, 3), "end_s": round(at + tail, 3), "text": text, "file": wav.name}
        )
    chains.append(f"anullsrc=r=16000:cl=mono,atrim=duration={total:.3f}[asil]")
    chains.append(f"[asil]{''.join(a_labels)}amix=inputs={1 + len(a_labels)}:normalize=0:duration=first[aout]")
    args = inputs + [
        "-filter_complex",
        ";".join(chains),
        "-map",
        f"[{video_out}]",
        "-map",
        "[aout]",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        str(crf),
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-movflags",
        "+faststart",
    ]
    if gop:
        args += ["-g", str(gop)]
    args += ["-t", f"{total:.3f}", str(out)]
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_ffmpeg(args, what=f"rendering sample {out.name}")
    finally:
        if title_dir is not None:
            title_dir.cleanup()
    return truth


def demo_shots(face_png: Path) -> list[Shot]:
    """The bundled sample: ~24 s with every kind of event the local plugins detect."""
    return [
        Shot("testsrc", 3.0),
        Shot("life", 3.0),  # hard cut at 3.0
        Shot("cells", 3.0, "dissolve", 1.0),  # dissolve
        Shot(f"image:{face_png}", 3.0),  # hard cut to a face
        Shot("gradient", 3.0, "fade", 1.2),  # fade through black
        Shot("bars", 2.0),  # colour bars
        Shot("black", 1.0),  # black frames
        Shot("testsrc_warm", 4.0),
    ]


def render_demo(out: Path) -> Truth:
    """Render the demo video (with speech and a flash) and write its truth beside it as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        face = draw_face_image(Path(tmp) / "face.png", 640, 360)
        truth = render(out, demo_shots(face), flashes=(20.4,), speech=(("speech_a", 0.5), ("speech_b", 12.5)))
    out.with_suffix(".truth.json").write_text(truth.to_json())
    return truth
