"""Extract the audio track once, as 16 kHz mono PCM: what speech models and silence detection want."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

from vidintel_pipeline.media.ffmpeg import run_ffmpeg

SAMPLE_RATE = 16_000


def extract_audio(src: str | os.PathLike[str], dst: Path, *, offset_s: float = 0.0) -> Path:
    """``offset_s``: where the first audio sample lies on the video's timeline (probe's ``audio_offset_s``).

    The WAV always starts at video frame 0, so transcript words and silences share the markers' clock: audio
    that starts later is preceded by silence, audio that starts earlier (an edit list delaying the video) loses
    its lead-in, which plays before any picture.
    """
    shift = []
    if offset_s > 0.001:
        shift = ["-af", f"adelay=delays={int(round(offset_s * 1000))}:all=1"]
    elif offset_s < -0.001:
        # from this stream's own start (ffmpeg counts from the earliest stream of the file, which may be another)
        shift = ["-af", f"asetpts=PTS-STARTPTS,atrim=start={-offset_s:.6f},asetpts=PTS-STARTPTS"]
    run_ffmpeg(
        [
            "-i",
            os.fspath(src),
            "-map",
            "0:a:0",
            "-vn",
            *shift,
            "-ac",
            "1",
            "-ar",
            str(SAMPLE_RATE),
            "-c:a",
            "pcm_s16le",
            "-f",
            "wav",
            dst.as_posix(),
        ],
        what=f"extracting audio from {Path(src).name}",
    )
    return dst


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Samples as float32 in [-1, 1] and the sample rate (16-bit PCM mono, as written above)."""
    with wave.open(os.fspath(path), "rb") as w:
        rate = w.getframerate()
        raw = w.readframes(w.getnframes())
        width, channels = w.getsampwidth(), w.getnchannels()
    if width != 2:
        raise ValueError(f"{path}: expected 16-bit PCM, got {8 * width}-bit")
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    return x, rate
