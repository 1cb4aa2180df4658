"""The shared frame stream: decode a video once and fan every frame out to all visual detectors.

Why this shape: decoding dominates the cost of local analysis, so each video is decoded exactly once,
downscaled once to an *analysis resolution* (320 px wide), and every detector (shots, black frames,
colour bars, faces, keyframe selection) consumes the same :class:`Frame` objects, PySceneDetect-style.
Detectors that want an even smaller picture share one cached thumbnail per frame (:meth:`Frame.small`).

Decoding runs in FFmpeg's own threads (PyAV ``thread_type="AUTO"``) with the in-loop deblocking filter
skipped: deblocking only smooths block edges, which no detector here can tell apart at 320 px, and
skipping it makes decoding about 10% faster than a plain full decode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional, Protocol

import av
import cv2
import numpy as np

from .ffmpeg import MediaError

ANALYSIS_WIDTH = 320
SMALL_SIZE = (64, 36)  # (width, height) of the shared thumbnail

cv2.setNumThreads(1)  # per-frame work is tiny; OpenCV's thread pool would only fight the decoder threads


@dataclass(eq=False)
class Frame:
    """One decoded frame at analysis resolution, in planar YUV 4:2:0 (luma ``y``, chroma ``u``/``v``)."""

    index: int
    time_s: float
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    _small: Optional[np.ndarray] = field(default=None, repr=False)
    _bgr: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def width(self) -> int:
        return self.y.shape[1]

    @property
    def height(self) -> int:
        return self.y.shape[0]

    def small(self) -> np.ndarray:
        """A 64x36x3 float32 YUV thumbnail, computed once and shared by all detectors."""
        if self._small is None:
            w, h = SMALL_SIZE
            self._small = np.dstack(
                [cv2.resize(p, (w, h), interpolation=cv2.INTER_AREA) for p in (self.y, self.u, self.v)]
            ).astype(np.float32)
        return self._small

    def bgr(self) -> np.ndarray:
        """BGR picture at analysis resolution (for keyframe JPEGs and colour work)."""
        if self._bgr is None:
            i420 = np.concatenate([self.y.ravel(), self.u.ravel(), self.v.ravel()]).reshape(
                self.height * 3 // 2, self.width
            )
            self._bgr = cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
        return self._bgr


class FrameConsumer(Protocol):
    def process(self, frame: Frame) -> None: ...


def analysis_size(width: int, height: int, rotation: int = 0, target_width: int = ANALYSIS_WIDTH) -> tuple[int, int]:
    """Even (width, height) at most ``target_width`` wide, keeping the displayed aspect ratio."""
    if rotation % 180:
        width, height = height, width
    tw = min(target_width, width - width % 2) or 2
    th = max(2, int(round(height * tw / width / 2)) * 2)
    return tw, th


def iter_frames(
    path: str | os.PathLike[str],
    *,
    time_offset: float = 0.0,
    target_width: int = ANALYSIS_WIDTH,
    threads: int = 0,
) -> Iterator[Frame]:
    """Decode ``path`` once, yielding frames at analysis resolution on the source timeline."""
    name = os.path.basename(os.fspath(path))
    try:
        container = av.open(os.fspath(path))
    except av.FFmpegError as exc:
        raise MediaError(f"{name}: cannot open for decoding ({exc})") from exc
    with container:
        if not container.streams.video:
            return
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if threads:
            stream.thread_count = threads
        stream.codec_context.options = {"skip_loop_filter": "all"}
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        size = None
        index = 0
        try:
            for f in container.decode(stream):
                if size is None:
                    rotation = int(getattr(f, "rotation", 0) or 0) % 360
                    size = analysis_size(f.width, f.height, rotation, target_width)
                    # resize before rotating: the resize target is in the coded orientation
                    coded = (size[1], size[0]) if rotation % 180 else size
                if f.format.name not in ("yuv420p", "yuvj420p"):
                    f = f.reformat(format="yuv420p")
                y, u, v = (_plane(f, i) for i in range(3))
                y = cv2.resize(y, coded, interpolation=cv2.INTER_AREA)
                cw, ch = coded[0] // 2, coded[1] // 2
                u = cv2.resize(u, (cw, ch), interpolation=cv2.INTER_AREA)
                v = cv2.resize(v, (cw, ch), interpolation=cv2.INTER_AREA)
                if rotation:
                    k = {90: 1, 180: 2, 270: 3}.get(rotation, 0)
                    y, u, v = (np.ascontiguousarray(np.rot90(p, k)) for p in (y, u, v))
                t = float(f.time) - start if f.time is not None else index / rate
                yield Frame(index=index, time_s=round(t + time_offset, 6), y=y, u=u, v=v)
                index += 1
        except av.FFmpegError as exc:
            raise MediaError(f"{name}: decoding failed at frame {index} ({exc})") from exc


def _plane(frame: av.VideoFrame, i: int) -> np.ndarray:
    p = frame.planes[i]
    h = p.height
    w = p.width
    return np.frombuffer(p, np.uint8).reshape(h, p.line_size)[:, :w]


def run_frame_pipeline(
    path: str | os.PathLike[str],
    consumers: Iterable[FrameConsumer],
    *,
    time_offset: float = 0.0,
    on_progress: Optional[Callable[[float], None]] = None,
    progress_every_s: float = 2.0,
) -> int:
    """Decode once and feed every frame to every consumer. Returns the number of frames decoded."""
    consumers = list(consumers)
    n = 0
    next_report = progress_every_s
    for frame in iter_frames(path, time_offset=time_offset):
        for c in consumers:
            c.process(frame)
        n += 1
        if on_progress is not None and frame.time_s >= next_report:
            on_progress(frame.time_s)
            next_report = frame.time_s + progress_every_s
    return n
