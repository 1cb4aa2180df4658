"""Cut a video into chunks by stream copy, never re-encoding.

Stream copy can only cut at keyframes, so boundaries are planned on the source's actual keyframe times
(read by demuxing, without decoding): each chunk ends at the last keyframe that keeps it within
``max_chunk_s``. A GOP longer than the limit cannot be split without re-encoding; that chunk is kept whole
and flagged ``over_limit`` in the manifest rather than silently re-encoded.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import av

from vidintel_pipeline.media.ffmpeg import MediaError, run_ffmpeg


@dataclass
class ChunkPlan:
    index: int
    start_s: float
    end_s: float
    over_limit: bool = False

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def as_dict(self) -> dict:
        return asdict(self) | {"duration_s": round(self.duration_s, 6)}


def keyframe_times(path: str | os.PathLike[str]) -> list[float]:
    """Presentation times (s, from the stream start) of the video's keyframes, by demuxing only."""
    with av.open(os.fspath(path)) as c:
        if not c.streams.video:
            return [0.0]
        s = c.streams.video[0]
        tb = s.time_base
        if tb is None:
            raise MediaError(f"{path}: the video stream has no time base")
        start = s.start_time or 0
        times = []
        for pkt in c.demux(s):
            if pkt.is_keyframe and pkt.pts is not None:
                times.append(float((pkt.pts - start) * tb))
    times = sorted(set(round(t, 6) for t in times if t >= 0))
    return times or [0.0]


def plan_chunks(keyframes: list[float], duration_s: float, max_chunk_s: float) -> list[ChunkPlan]:
    if max_chunk_s <= 0:
        raise ValueError("max_chunk_s must be positive")
    cuts = [k for k in keyframes if 0 < k < duration_s]
    plans: list[ChunkPlan] = []
    start = 0.0
    i = 0
    while start < duration_s - 1e-6:
        limit = start + max_chunk_s
        if limit >= duration_s - 1e-6:
            plans.append(ChunkPlan(len(plans), start, duration_s))
            break
        while i < len(cuts) and cuts[i] <= start + 1e-6:
            i += 1
        best = None
        j = i
        while j < len(cuts) and cuts[j] <= limit + 1e-6:
            best = cuts[j]
            j += 1
        if best is None:  # GOP longer than the limit: take the next keyframe and flag it
            best = cuts[i] if i < len(cuts) else duration_s
            plans.append(ChunkPlan(len(plans), start, best, over_limit=True))
        else:
            plans.append(ChunkPlan(len(plans), start, best))
        start = best
    return plans


def cut_chunks(src: str | os.PathLike[str], plans: list[ChunkPlan], out_dir: Path, ext: str) -> list[Path]:
    """Write one file per plan into ``out_dir`` by stream copy; returns the files in order."""
    pattern = str(out_dir / f"chunk_%05d{ext}")
    if len(plans) == 1:
        target = out_dir / f"chunk_00000{ext}"
        run_ffmpeg(["-i", os.fspath(src), "-map", "0", "-c", "copy", target.as_posix()], what=f"chunking {src}")
        return [target]
    # segment at each keyframe time (a hair early so float rounding cannot push a cut to the next keyframe)
    times = ",".join(f"{max(p.start_s - 0.0005, 0):.6f}" for p in plans[1:])
    run_ffmpeg(
        [
            "-i",
            os.fspath(src),
            "-map",
            "0",
            "-c",
            "copy",
            "-f",
            "segment",
            "-segment_times",
            times,
            "-reset_timestamps",
            "1",
            pattern,
        ],
        what=f"chunking {Path(src).name}",
    )
    files = sorted(out_dir.glob(f"chunk_*{ext}"))
    if len(files) != len(plans):
        raise MediaError(f"chunking {Path(src).name}: ffmpeg wrote {len(files)} chunks where {len(plans)} were planned")
    return files


def plan_chunk_sets(
    keyframes: list[float], duration_s: float, limits: list[float], default_s: float
) -> dict[float, list[ChunkPlan]]:
    """One chunk plan per distinct plugin limit, keyed by the limit: providers bill each request (Rekognition each
    started minute), so a plugin gets chunks cut to its own ``max_chunk_duration``, never to a shorter limit of
    another plugin. The shortest limit (``default_s`` when no plugin has one) always gets a set; longer limits
    get one only if the video is longer than the limit (otherwise the plugin reads the whole source)."""
    shortest = min(limits) if limits else default_s
    wanted = [shortest] + sorted(x for x in set(limits) if x > shortest and duration_s > x + 1e-6)
    return {limit: plan_chunks(keyframes, duration_s, limit) for limit in wanted}
