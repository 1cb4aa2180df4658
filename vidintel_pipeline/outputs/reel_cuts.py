"""Cutting one clip of a reel frame-exactly: stream-copied between keyframes, re-encoded only at the edges, its
audio cut to the same times."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidintel_pipeline.media.ffmpeg import run_ffmpeg

COPYABLE = {"h264", "hevc"}


class CompileError(ValueError):
    pass


@dataclass
class Clip:
    video_id: str
    start_s: float
    end_s: float
    why: str = ""
    source_uri: str = ""
    reel_start_s: float = 0.0
    copied_s: float = 0.0
    reencoded_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def frame_times(path: Path) -> tuple[list[float], list[float]]:
    """(every frame's, every keyframe's) presentation time from the stream start, by demuxing only."""
    import av

    with av.open(str(path)) as c:
        st = c.streams.video[0]
        tb, start = st.time_base, st.start_time or 0
        if tb is None:
            raise CompileError(f"{path}: the video stream has no time base")
        frames, keys = [], []
        for pkt in c.demux(st):
            if pkt.pts is None:
                continue
            t = round(float((pkt.pts - start) * tb), 6)
            frames.append(t)
            if pkt.is_keyframe:
                keys.append(t)
    return sorted(frames), sorted(keys)


def smart_cut(path: Path, info: Any, times: tuple[list[float], list[float]], c: Clip, tmp: Path, i: int) -> list[Path]:
    """Head re-encoded up to the first keyframe, body copied keyframe to keyframe, tail re-encoded.

    The body must also *end* on a keyframe: in a closed GOP, the packets before a keyframe in decode order
    are exactly the frames shown before it, so copying a known number of frames is exact. Ending a copy
    between keyframes would cut by decode order and drop or add frames around B-frames.
    """
    frames, keys = times
    half = 0.5 / (info.fps or 25.0)
    inside = [k for k in keys if c.start_s - half <= k <= c.end_s + half]
    if len(inside) < 2:
        p = tmp / f"{i:04d}_all.ts"
        encode_span(path, c.start_s, c.end_s, p, info)
        c.reencoded_s = round(c.duration_s, 3)
        return [p]
    k0, k1 = inside[0], inside[-1]
    parts = []
    if k0 - c.start_s > half:
        head = tmp / f"{i:04d}_a_head.ts"
        encode_span(path, c.start_s, k0, head, info)
        parts.append(head)
    body = tmp / f"{i:04d}_b_body.ts"
    n = sum(1 for t in frames if k0 - half <= t < k1 - half)
    run_ffmpeg(
        [
            "-ss",
            seek_arg(info, k0),
            "-i",
            str(path),
            "-frames:v",
            str(n),
            "-map",
            "0:v:0",
            "-c",
            "copy",
            "-bsf:v",
            f"{info.video_codec}_mp4toannexb",
            "-muxdelay",
            "0",
            "-f",
            "mpegts",
            str(body),
        ],
        what=f"copying {path.name} {k0:.3f}-{k1:.3f} s",
    )
    parts.append(body)
    if c.end_s - k1 > half:
        tail = tmp / f"{i:04d}_c_tail.ts"
        encode_span(path, k1, c.end_s, tail, info)
        parts.append(tail)
    c.copied_s = round(k1 - k0, 3)
    c.reencoded_s = round(c.duration_s - c.copied_s, 3)
    return parts


def seek_arg(info: Any, t: float) -> str:
    """ffmpeg's ``-ss`` for time ``t`` of vidintel's timeline (frame 0 = 0.0): ffmpeg counts from the file's
    start, which an edit list puts before the first picture (0.52 s before it in a file whose video starts late)."""
    return f"{max(0.0, t + getattr(info, 'video_start_s', 0.0) - getattr(info, 'container_start_s', 0.0)):.6f}"


def encode_span(path: Path, start: float, end: float, out: Path, like: Any, src: Any = None) -> None:
    """Re-encode the picture of ``[start, end)`` of ``path`` (probed as ``src``, default ``like``) in ``like``'s
    size, rate and codec family."""
    src = like if src is None else src
    w, h, fps = like.width, like.height, like.fps or 25.0
    if like.rotation % 180:
        w, h = h, w
    vf = f"scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps}"
    codec = ["-c:v", "libx265", "-tag:v", "hvc1"] if like.video_codec == "hevc" else ["-c:v", "libx264"]
    run_ffmpeg(
        [
            "-ss",
            seek_arg(src, start),
            "-i",
            str(path),
            "-t",
            f"{end - start:.6f}",
            "-map",
            "0:v:0",
            "-an",
            "-vf",
            vf,
            *codec,
            "-preset",
            "veryfast",
            "-crf",
            "18",
            "-pix_fmt",
            "yuv420p",
            "-muxdelay",
            "0",
            "-f",
            "mpegts",
            str(out),
        ],
        what=f"re-encoding {path.name} {start:.3f}-{end:.3f} s",
    )


def cut_audio(clips: list[Clip], sources: dict[str, tuple[Path, Any, Any]], out: Path) -> None:
    """The reel's sound in one pass: each clip's audio (or silence) trimmed, joined and encoded to AAC.

    Audio is cheap to encode, and encoding it whole keeps it sample-exact with the cut picture.
    """
    inputs: list[str] = []
    chains: list[str] = []
    n = 0
    for i, c in enumerate(clips):
        path, info, _ = sources[c.video_id]
        if info.has_audio:
            inputs += ["-ss", seek_arg(info, c.start_s), "-t", f"{c.duration_s:.6f}", "-i", str(path)]
            chains.append(
                f"[{n}:a:0]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,"
                f"apad,atrim=duration={c.duration_s:.6f},asetpts=PTS-STARTPTS[a{i}]"
            )
        else:
            inputs += ["-f", "lavfi", "-t", f"{c.duration_s:.6f}", "-i", "anullsrc=r=48000:cl=stereo"]
            chains.append(f"[{n}:a:0]aformat=sample_fmts=fltp:channel_layouts=stereo,asetpts=PTS-STARTPTS[a{i}]")
        n += 1
    chains.append("".join(f"[a{i}]" for i in range(len(clips))) + f"concat=n={len(clips)}:v=0:a=1[aout]")
    run_ffmpeg(
        inputs + ["-filter_complex", ";".join(chains), "-map", "[aout]", "-c:a", "aac", "-b:a", "128k", str(out)],
        what="mixing the reel's audio",
    )
