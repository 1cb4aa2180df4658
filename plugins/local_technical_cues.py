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

    def begin(self, chunk, config) -> None:
        super().begin(chunk, config)
        labels = ("black_frames", "color_bars", "freeze_frame")
        self._runs: dict[str, list[list[float]]] = {k: [] for k in labels}
        self._open: dict[str, list[float] | None] = {k: None for k in labels}
        self._prev = None
        self._last_t = 0.0
        self._step = 0.04

    def process(self, frame: Frame) -> None:
        s = frame.small()
        y = s[:, :, 0]
        # "98th percentile <= limit" is "at most 2% of pixels above it", without sorting
        is_black = float(y.mean()) <= self.options.black_max_luma and float((y > self.options.black_max_p98).mean()) <= 0.02
        bars = (not is_black) and _is_bars(s)
        self._mark("black_frames", is_black, frame.time_s)
        self._mark("color_bars", bars, frame.time_s)
        # a freeze is a picture that stops changing (black and bars have their own cues)
        frozen = self._prev is not None and float(np.abs(s - self._prev).mean()) < self.options.freeze_max_diff
        self._mark("freeze_frame", frozen and not is_black and not bars, frame.time_s - (self._step if frozen else 0))
        self._prev = s
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
    # cheap exit for nearly every frame: bars are strongly saturated across most of the top
    if float(np.abs(top[:, :, 1:] - 128.0).mean()) < 25:
        return False
    cols = top.mean(axis=0)  # (w, 3): bars are vertical, so column means carry the structure
    for x0, x1 in ((0, w), (w // 8, w - w // 8)):  # full width (SMPTE/EBU) or HD bars with side pillars
        bw = (x1 - x0) / 7.0
        lo = (x0 + np.arange(7) * bw + bw * 0.25).astype(int)
        hi = np.maximum((x0 + np.arange(1, 8) * bw - bw * 0.25).astype(int), lo + 1)
        means = np.array([cols[a:b].mean(axis=0) for a, b in zip(lo, hi)])
        if not np.all(np.diff(means[:, 0]) < -6):
            continue
        if max(float(top[:, a:b].reshape(-1, 3).std(axis=0).max()) for a, b in zip(lo, hi)) > 14:
            continue
        ok = abs(means[0][1] - 128) < 16 and abs(means[0][2] - 128) < 16
        for (cb_sign, cr_sign), (_, cb, cr) in zip(_BAR_CHROMA, means[1:]):
            for sign, value in ((cb_sign, cb - 128), (cr_sign, cr - 128)):
                if sign and (np.sign(value) != sign or abs(value) < 12):
                    ok = False
        if ok:
            return True
    return False
