"""Technical cues from the shared frame stream: black frames, colour bars and freeze frames.

Black: a frame whose mean luma and 98th-percentile luma are both near video black (limited-range 16).
Colour bars: the top two thirds of the picture split into seven flat vertical bands whose luma falls
band by band (white, yellow, cyan, green, magenta, red, blue) with the chroma signs of those colours.
That structure holds for SMPTE, EBU and HD bars alike, and almost never in natural pictures.
Freeze: the picture stops changing (thumbnail difference under ``freeze_max_diff``) for at least
``freeze_min_s``, black and bars excepted. All are checked on the shared 64x36 thumbnail; black and bars
runs shorter than ``min_duration_s`` are ignored.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from vidintel_pipeline.contracts import PluginInfo, PluginOptions, TemporalMarker
from vidintel_pipeline.frame_plugins import FramePlugin
from vidintel_pipeline.media.frames import Frame

# expected (sign of Cb-128, sign of Cr-128) for yellow, cyan, green, magenta, red, blue; 0 = either
_BAR_CHROMA = [(-1, 0), (0, -1), (-1, -1), (1, 1), (0, 1), (1, 0)]


class TechnicalCuesOptions(PluginOptions):
    black_max_luma: float = 24.0
    black_max_p98: float = 40.0
    min_duration_s: float = 0.2
    freeze_max_diff: float = 0.1     # mean thumbnail change (0-255) under which a frame repeats the last
    freeze_min_s: float = 2.0        # a picture unchanged this long is a freeze


class LocalTechnicalCuesPlugin(FramePlugin):
    Options = TechnicalCuesOptions

    def get_plugin_info(self) -> PluginInfo:
        return PluginInfo(
            plugin_name="local_technical_cues",
            plugin_version="1.0.0",
            supported_events=["technical_cue", "black_frames", "color_bars", "freeze_frame"],
            accuracy={"black_frames": 1.0, "color_bars": 1.0},
            accuracy_source="tests/test_local_plugins.py on rendered media: every black and bars span found within 0.05 s",
            description="Black frames and colour bars from the shared decode (CPU, no network).",
        )

    @property
    def segment_context_s(self) -> float:
        return self.options.freeze_min_s  # black and bars runs cut by a segment edge are joined again

    def begin(self, chunk, config) -> None:
        super().begin(chunk, config)
        labels = ("black_frames", "color_bars", "freeze_frame")
        self._runs: dict[str, list[list[float]]] = {k: [] for k in labels}
        self._open: dict[str, list[float] | None] = {k: None for k in labels}
        self._seen = False
        self._last_t = 0.0
        self._step = 0.04

    def process(self, frame: Frame) -> None:
        s = frame.small()
        # "98th percentile <= limit" is "at most 2% of pixels above it", without sorting
        is_black = cv2.mean(s)[0] <= self.options.black_max_luma and float((s[:, :, 0] > self.options.black_max_p98).mean()) <= 0.02
        bars = (not is_black) and _is_bars(s)
        self._mark("black_frames", is_black, frame.time_s)
        self._mark("color_bars", bars, frame.time_s)
        # a freeze is a picture that stops changing (black and bars have their own cues)
        frozen = self._seen and frame.change < self.options.freeze_max_diff
        self._mark("freeze_frame", frozen and not is_black and not bars, frame.time_s - (self._step if frozen else 0))
        self._seen = True
        if frame.time_s > self._last_t:
            self._step = frame.time_s - self._last_t
        self._last_t = frame.time_s

    def _mark(self, label: str, on: bool, t: float) -> None:
        run = self._open[label]
        if on and run is None:
            self._open[label] = [t, t]
        elif on:
            run[1] = t
        elif run is not None:
            self._runs[label].append(run)
            self._open[label] = None

    def end(self) -> list[TemporalMarker]:
        markers = []
        for label in self._runs:
            if self._open[label] is not None:
                self._runs[label].append(self._open[label])
            shortest = self.options.freeze_min_s if label == "freeze_frame" else self.options.min_duration_s
            for start, last in self._runs[label]:
                end = last + self._step  # a run covers its last frame's full duration
                if end - start + 1e-6 < shortest:
                    continue
                markers.append(
                    TemporalMarker(
                        type="technical_cue", start_s=round(start, 6), end_s=round(end, 6), label=label,
                        confidence=0.95, plugin="local_technical_cues",
                    )
                )
        markers.sort(key=lambda m: m.start_s)
        return markers


def _is_bars(s: np.ndarray) -> bool:
    """Seven flat bands, luma falling left to right, with the bar colours' chroma signs."""
    h, w = s.shape[:2]
    top = s[: h * 2 // 3]
    # bars are vertical, so column means carry the structure; a band's mean is a difference of cumulative sums
    cols = cv2.reduce(top, 0, cv2.REDUCE_AVG)[0]
    luma = cols[:, 0].tolist()
    centres = _centres(w)
    if not any(all(luma[a] > luma[b] for a, b in zip(c, c[1:])) for c in centres):
        return False  # no layout's band centres fall left to right: nearly every frame stops here, cheaply
    csum = np.concatenate([np.zeros((1, 3), np.float32), np.cumsum(cols, axis=0)])
    lo, hi = _bands(w)  # (2 layouts, 7 bands) each
    means = (csum[hi] - csum[lo]) / (hi - lo)[..., None]
    # the full luma staircase on band means, for both layouts at once (few frames get this far)
    for layout in np.nonzero(np.all(np.diff(means[:, :, 0], axis=1) < -6, axis=1))[0]:
        m, a_, b_ = means[layout], lo[layout], hi[layout]
        if max(float(top[:, a:b].reshape(-1, 3).std(axis=0).max()) for a, b in zip(a_, b_)) > 14:
            continue
        ok = abs(m[0][1] - 128) < 16 and abs(m[0][2] - 128) < 16
        for (cb_sign, cr_sign), (_, cb, cr) in zip(_BAR_CHROMA, m[1:]):
            for sign, value in ((cb_sign, cb - 128), (cr_sign, cr - 128)):
                if sign and (np.sign(value) != sign or abs(value) < 12):
                    ok = False
        if ok:
            return True
    return False


@functools.lru_cache(maxsize=8)
def _bands(w: int) -> tuple[np.ndarray, np.ndarray]:
    """First and end column of the inner half of each of 7 bands, for two layouts: full width (SMPTE/EBU)
    and HD bars with side pillars."""
    los, his = [], []
    for x0, x1 in ((0, w), (w // 8, w - w // 8)):
        bw = (x1 - x0) / 7.0
        lo = (x0 + np.arange(7) * bw + bw * 0.25).astype(int)
        los.append(lo)
        his.append(np.maximum((x0 + np.arange(1, 8) * bw - bw * 0.25).astype(int), lo + 1))
    return np.array(los), np.array(his)


@functools.lru_cache(maxsize=8)
def _centres(w: int) -> list[list[int]]:
    """The centre column of each band, per layout (see _bands)."""
    lo, hi = _bands(w)
    return [[int(c) for c in (a + b - 1) // 2] for a, b in zip(lo, hi)]
