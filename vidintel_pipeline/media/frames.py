"""The shared frame stream: decode a video once and fan every frame out to all visual detectors.

Why this shape: decoding dominates the cost of local analysis, so each video is decoded exactly once,
downscaled once to an *analysis resolution* (320 px wide), and every detector (shots, black frames,
colour bars, faces, keyframe selection) consumes the same :class:`Frame` objects, PySceneDetect-style.
Detectors that want an even smaller picture share one cached thumbnail per frame (:meth:`Frame.small`).

Decoding runs in FFmpeg's own threads (PyAV ``thread_type="AUTO"``) with the in-loop deblocking filter
skipped: deblocking only smooths block edges, which no detector here can tell apart at 320 px, and
skipping it makes decoding about 10% faster than a plain full decode.

Long videos on several CPUs are decoded as parallel time segments instead (:mod:`vidintel_pipeline.engine.segments`),
each in one decoder thread. Otherwise :func:`run_frame_pipeline` decodes on a thread of its own, a few
frames ahead of the detectors, and computes each frame's thumbnail and its change from the previous frame there. The
decoder's threads release the
GIL, so decoding never waits while a detector spends milliseconds on one frame (a face search), and the
detectors never wait for a frame that could have been decoded meanwhile.

Decoding lives in :mod:`vidintel_pipeline.media.decode`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Protocol

import cv2
import numpy as np

if TYPE_CHECKING:
    pass


ANALYSIS_WIDTH = 320


SMALL_SIZE = (64, 36)  # (width, height) of the shared thumbnail


cv2.setNumThreads(1)  # per-frame work is tiny; OpenCV's thread pool would only fight the decoder threads


class Frame:
    """One decoded frame. Consumers pay only for the views they use:

    * :meth:`small` -- a 64x36 YUV thumbnail computed straight from the full-resolution planes, once,
      and shared by every per-frame detector (shots, black, bars);
    * :attr:`change` -- mean absolute thumbnail difference from the previous frame (0-255), computed once
      for every detector that measures motion (shots, freezes);
    * :meth:`luma_points` -- luma point-sampled to about the analysis resolution: cheap, and aliased, so for
      measures (keyframe sharpness), never for pictures;
    * ``y``/``u``/``v`` -- planar YUV 4:2:0 at the analysis resolution (320 px wide, area-averaged), computed
      on first use, for sampled consumers (faces, keyframe JPEGs);
    * :meth:`bgr` -- a BGR picture at the analysis resolution (keyframe JPEGs).

    Rotation metadata is applied to every view, so frames come out upright.
    """

    __slots__ = (
        "index",
        "time_s",
        "change",
        "intra",
        "_planes",
        "_size",
        "_rot",
        "_small",
        "_points",
        "_y",
        "_u",
        "_v",
        "_bgr",
        "_keep",
    )
    # the views, each computed on first use
    _small: Optional[np.ndarray]
    _points: Optional[np.ndarray]
    _y: Optional[np.ndarray]
    _u: Optional[np.ndarray]
    _v: Optional[np.ndarray]
    _bgr: Optional[np.ndarray]

    def __init__(
        self,
        index: int,
        time_s: float,
        planes: tuple[np.ndarray, np.ndarray, np.ndarray],
        size: tuple[int, int],
        rotation: int = 0,
        keep: object = None,
    ):
        self.index = index
        self.time_s = time_s
        self._planes = planes  # full-resolution views into the decoder's buffers
        self._size = size  # analysis (width, height) as displayed
        self._rot = rotation
        self._keep = keep  # the decoded frame the views point into
        self._small = self._points = self._y = self._u = self._v = self._bgr = None
        self.change = 0.0  # set by the decoder thread (see follow)
        self.intra = False  # an intra-coded (I) frame: where a codec's quality "pops" happen

    def follow(self, previous: Optional["Frame"]) -> "Frame":
        """Compute the thumbnail and :attr:`change` against the frame before (None for the first frame)."""
        s = self.small()
        if previous is not None:
            self.change = cv2.norm(s, previous.small(), cv2.NORM_L1) / s.size
        return self

    @classmethod
    def from_planes(cls, index: int, time_s: float, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> "Frame":
        """A frame built from analysis-resolution planes (tests, synthetic input)."""
        f = cls(index, time_s, (y, u, v), (y.shape[1], y.shape[0]))
        f._y, f._u, f._v = y, u, v
        return f

    def _upright(self, a: np.ndarray) -> np.ndarray:
        k = {90: 1, 180: 2, 270: 3}.get(self._rot, 0)
        return np.ascontiguousarray(np.rot90(a, k)) if k else a

    def _coded(self, w: int, h: int) -> tuple[int, int]:
        return (h, w) if self._rot % 180 else (w, h)

    def _analysis(self, i: int) -> np.ndarray:
        """Plane i (0 Y, 1 U, 2 V) area-averaged to the analysis resolution, upright."""
        w, h = self._coded(*self._size)
        size = (w, h) if i == 0 else (w // 2, h // 2)
        return self._upright(cv2.resize(self._planes[i], size, interpolation=cv2.INTER_AREA))

    @property
    def y(self) -> np.ndarray:
        if self._y is None:
            self._y = self._analysis(0)
        return self._y

    @property
    def u(self) -> np.ndarray:
        if self._u is None:
            self._u = self._analysis(1)
        return self._u

    @property
    def v(self) -> np.ndarray:
        if self._v is None:
            self._v = self._analysis(2)
        return self._v

    @property
    def width(self) -> int:
        return self._size[0]

    @property
    def height(self) -> int:
        return self._size[1]

    def small(self) -> np.ndarray:
        """A 64x36x3 float32 YUV thumbnail, computed once and shared by all detectors."""
        if self._small is None:
            sw, sh = self._coded(*SMALL_SIZE)
            y, u, v = self._planes
            # Luma averages ~10x10 points per thumbnail pixel: fewer let fine moving textures (foliage, crowds)
            # through as noise, enough to hide a dissolve between two of them. Chroma is smooth: 2x2 will do.
            planes = [_thumb(y, sw, sh, samples=10), _thumb(u, sw, sh, samples=2), _thumb(v, sw, sh, samples=2)]
            self._small = self._upright(cv2.merge(planes)).astype(np.float32)
        return self._small

    def luma_points(self) -> np.ndarray:
        """Upright luma point-sampled at about 5 points per thumbnail pixel each way (320x180 from HD or 4K)."""
        if self._points is None:
            sw, sh = self._coded(*SMALL_SIZE)
            self._points = self._upright(_points(self._planes[0], sw, sh, 5))
        return self._points

    def bgr(self) -> np.ndarray:
        """BGR picture at analysis resolution (for keyframe JPEGs and colour work)."""
        if self._bgr is None:
            i420 = np.concatenate([self.y.ravel(), self.u.ravel(), self.v.ravel()]).reshape(
                self.height * 3 // 2, self.width
            )
            self._bgr = cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
        return self._bgr

    def picture(self, max_width: int) -> np.ndarray:
        """Upright BGR picture at most ``max_width`` wide, from the full-resolution planes (OCR, crops).

        Not cached: sampled consumers call it on a few frames; after :meth:`release` it can only give
        the analysis resolution.
        """
        y, u, v = self._planes
        w = min(max_width, y.shape[1] if not self._rot % 180 else y.shape[0])
        dw, dh = analysis_size(y.shape[1], y.shape[0], self._rot, w)
        cw, ch = self._coded(dw, dh)
        i420 = np.concatenate(
            [
                cv2.resize(y, (cw, ch), interpolation=cv2.INTER_AREA).ravel(),
                cv2.resize(u, (cw // 2, ch // 2), interpolation=cv2.INTER_AREA).ravel(),
                cv2.resize(v, (cw // 2, ch // 2), interpolation=cv2.INTER_AREA).ravel(),
            ]
        ).reshape(ch * 3 // 2, cw)
        return self._upright(cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420))

    def release(self) -> None:
        """Drop the full-resolution planes (kept consumers then hold only what they computed)."""
        self._planes = (self.y, self.u, self.v)
        self._keep = None


class FrameConsumer(Protocol):
    def process(self, frame: Frame) -> None: ...


def analysis_size(width: int, height: int, rotation: int = 0, target_width: int = ANALYSIS_WIDTH) -> tuple[int, int]:
    """Even (width, height) at most ``target_width`` wide, keeping the displayed aspect ratio."""
    if rotation % 180:
        width, height = height, width
    tw = min(target_width, width - width % 2) or 2
    th = max(2, int(round(height * tw / width / 2)) * 2)
    return tw, th


def _points(plane: np.ndarray, w: int, h: int, samples: int) -> np.ndarray:
    """``plane`` point-sampled to about ``samples`` points per w x h thumbnail pixel each way (a strided copy)."""
    step = max(1, min(plane.shape[1] // w, plane.shape[0] // h) // samples)
    return np.ascontiguousarray(plane[step // 2 :: step, step // 2 :: step]) if step > 1 else plane


def _thumb(plane: np.ndarray, w: int, h: int, samples: int) -> np.ndarray:
    """``plane`` averaged down to w x h from about ``samples`` x ``samples`` points per thumbnail pixel.

    Point-sampling first and averaging after costs a fraction of an area resize over every full-resolution
    pixel, and still averages enough points that sensor and compression noise stay out of frame differences.
    """
    return cv2.resize(_points(plane, w, h, samples), (w, h), interpolation=cv2.INTER_AREA)
