"""Text in the picture (titles, lower thirds, slides, signs) as ``text_in_video`` markers.

Reading a frame costs 0.1-0.3 s on one core, so the detector reads a sample of frames, never all:
one every ``sample_interval_s`` and one shortly after every cut (the 64x36 thumbnail every detector
shares jumps), at most one per ``min_interval_s``. A sample whose thumbnail is all but identical to the
last one read reuses that reading instead of running the models again (static slides cost one read).
Reading runs on a worker thread while the decoder moves on (onnxruntime releases the GIL).

Each distinct line of text becomes one marker spanning the samples that showed it (one missed sample
tolerated), start and end within half a sample period of the truth, with the text's box as fractions
of the picture (x, y, width, height). Models: PP-OCRv4 from the
``rapidocr-onnxruntime`` package, see :mod:`vidintel_pipeline.models.ocr`.
"""

from __future__ import annotations

import re
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from vidintel_pipeline.media.frames import Frame
from vidintel_pipeline.plugin_api.contracts import PluginError, PluginInfo, PluginOptions, TemporalMarker
from vidintel_pipeline.plugin_api.frame_plugin import FramePlugin


class OCROptions(PluginOptions):
    sample_interval_s: float = 1.0  # a text shown for less than this may be missed
    min_interval_s: float = 0.25  # cut-triggered samples come no closer than this
    cut_threshold: float = 12.0  # mean thumbnail luma change (0-255) that counts as a new picture
    same_picture: float = 1.5  # below this change from the last read, reuse its text
    max_width: int = 960  # pictures are read at most this wide
    min_confidence: float = 0.6
    min_chars: int = 2
    max_gap_samples: int = 1


def _key(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", text.lower()) or text


class LocalOCRPlugin(FramePlugin):
    Options = OCROptions
    options: OCROptions  # the instance's validated options (built by the base class from Options)

    def get_plugin_info(self) -> PluginInfo:
        return PluginInfo(
            plugin_name="local_ocr",
            plugin_version="1.0.0",
            supported_events=["text_in_video", "ocr"],
            accuracy={"ocr": 0.9},
            accuracy_source="tests/outputs/test_search_exports.py: rendered titles read word for word, within one "
            "sample period",
            description="Text in the picture (PP-OCRv4 on onnxruntime), sampled per second and per shot "
            "from the shared decode.",
        )

    def begin(self, chunk, config) -> None:
        super().begin(chunk, config)
        from vidintel_pipeline.models.ocr import OCRModelMissing, default_reader

        try:
            self._reader = default_reader(self.options.max_width)
        except OCRModelMissing as exc:
            raise PluginError(str(exc), plugin="local_ocr") from exc
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ocr")
        self._pending: list[tuple[float, Future]] = []
        self._samples: list[tuple[float, list]] = []
        self._last_read_thumb: np.ndarray | None = None
        self._last_read: Future | None = None
        self._prev_thumb: np.ndarray | None = None
        self._last_t = -1e9
        self._size = (1, 1)
        self._next_t = chunk.start_s

    def process(self, frame: Frame) -> None:
        thumb = frame.small()[:, :, 0]
        cut = (
            self._prev_thumb is not None and float(np.abs(thumb - self._prev_thumb).mean()) > self.options.cut_threshold
        )
        self._prev_thumb = thumb
        t = frame.time_s
        due = t + 1e-6 >= self._next_t or (cut and t - self._last_t >= self.options.min_interval_s)
        if not due:
            return
        self._last_t = t
        self._next_t = t + self.options.sample_interval_s
        if (
            self._last_read is not None
            and float(np.abs(thumb - self._last_read_thumb).mean()) < self.options.same_picture
        ):
            self._pending.append((t, self._last_read))
            return
        while sum(1 for _, f in self._pending if not f.done()) >= 2:  # keep the decoder at most two reads ahead
            self._pending[-1][1].result()
        picture = frame.picture(self.options.max_width)
        self._size = picture.shape[1], picture.shape[0]
        self._last_read = self._pool.submit(self._reader.read, picture)
        self._last_read_thumb = thumb
        self._pending.append((t, self._last_read))

    def end(self) -> list[TemporalMarker]:
        try:
            samples = [(t, f.result()) for t, f in self._pending]
        finally:
            self._pool.shutdown(wait=True)
        open_runs: dict[str, dict] = {}
        markers: list[TemporalMarker] = []
        times = [t for t, _ in samples]
        for i, (_t, boxes) in enumerate(samples):
            seen = set()
            for b in boxes:
                if b.confidence < self.options.min_confidence or len(b.text.strip()) < self.options.min_chars:
                    continue
                k = _key(b.text)
                seen.add(k)
                run = open_runs.setdefault(k, {"first": i, "texts": {}, "conf": [], "box": b.box})
                run["last"] = i
                run["texts"][b.text] = run["texts"].get(b.text, 0) + 1
                run["conf"].append(b.confidence)
            for k in [
                k for k, r in open_runs.items() if k not in seen and i - r["last"] > self.options.max_gap_samples
            ]:
                markers.append(self._marker(open_runs.pop(k), times))
        markers += [self._marker(r, times) for r in open_runs.values()]
        return sorted(markers, key=lambda m: (m.start_s, m.label))

    def _marker(self, run: dict, times: list[float]) -> TemporalMarker:
        assert self.chunk is not None  # set by begin()
        first, last = run["first"], run["last"]
        # the text appeared somewhere between the previous sample and this one: report the midpoint
        start = (times[first - 1] + times[first]) / 2 if first > 0 else self.chunk.start_s
        end = (times[last] + times[last + 1]) / 2 if last + 1 < len(times) else self.chunk.end_s
        text = max(run["texts"], key=run["texts"].get)
        x, y, w, h = run["box"]
        pw, ph = self._size
        return TemporalMarker(
            type="text_in_video",
            start_s=round(max(self.chunk.start_s, start), 6),
            end_s=round(min(self.chunk.end_s, max(end, start)), 6),
            label=text,
            confidence=round(float(np.mean(run["conf"])), 3),
            plugin="local_ocr",
            attributes={
                "samples": last - first + 1,
                "box": [round(x / pw, 4), round(y / ph, 4), round(w / pw, 4), round(h / ph, 4)],
            },
        )
