"""Reading text in pictures with PaddleOCR's PP-OCRv4 models on onnxruntime.

The models (a DB text detector and a CRNN/SVTR recogniser, about 15 MB) ship inside the PyPI package
``rapidocr-onnxruntime``; :func:`fetch` unpacks them (see :mod:`vidintel_pipeline.models.files` for why the
package itself is not installed). onnxruntime is already a dependency through faster-whisper.

Why a reader of our own instead of rapidocr's: it needs pyclipper and shapely only to grow the detected
text polygons, and video text (titles, lower thirds, slides, signs) is close enough to rectangular that
growing the minimum-area rectangle gives the same crops. The steps follow PaddleOCR's defaults:

1. detect: scale the picture so its longer side is at most ``max_side`` (multiple of 32), normalise,
   run DB; threshold the probability map at 0.3, keep regions whose mean probability is >= 0.5, grow each
   rectangle by ``area * 1.6 / perimeter`` on every side (DB's unclip);
2. recognise: deskew each rectangle to a 48 px high strip, run the recogniser in batches, greedy CTC
   decoding over the model's own character list (stored in the ONNX metadata);
3. join boxes on one line whose gap is under two text heights (the detector splits wide word gaps).

The recogniser is the Chinese+English PP-OCRv4 model, so it reads Latin text, digits and CJK.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from vidintel_pipeline.models import files as models

MODEL_NAME = "ppocr-v4"
PACKAGE = "rapidocr-onnxruntime==1.4.4"
DET, REC = "det.onnx", "rec.onnx"


class OCRModelMissing(RuntimeError):
    pass


def model_dir() -> Path:
    env = os.environ.get("VIDINTEL_OCR_MODEL")
    d = Path(env) if env else models.shared_dir(MODEL_NAME)
    if not ((d / DET).is_file() and (d / REC).is_file()):
        raise OCRModelMissing(
            f"the OCR models are not installed in {d}; run `vidintel models fetch` (make install does) "
            "or set VIDINTEL_OCR_MODEL to a folder with det.onnx and rec.onnx"
        )
    return d


def fetch(dest: Optional[Path] = None) -> Path:
    base = "rapidocr_onnxruntime/models/"
    return models.fetch_from_wheel(
        PACKAGE,
        {base + "ch_PP-OCRv4_det_infer.onnx": DET, base + "ch_PP-OCRv4_rec_infer.onnx": REC},
        dest or models.shared_dir(MODEL_NAME),
        required=[DET, REC],
    )


@dataclass(frozen=True)
class TextBox:
    text: str
    confidence: float
    box: tuple[int, int, int, int]  # x, y, width, height in the input picture (axis-aligned bounds)


class TextReader:
    """``read(bgr) -> [TextBox]``, top to bottom, left to right."""

    def __init__(
        self, folder: Optional[Path] = None, *, max_side: int = 960, threads: int = 1, min_confidence: float = 0.5
    ):
        import onnxruntime as ort

        folder = folder or model_dir()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.det = ort.InferenceSession(str(folder / DET), opts, providers=["CPUExecutionProvider"])
        self.rec = ort.InferenceSession(str(folder / REC), opts, providers=["CPUExecutionProvider"])
        chars = self.rec.get_modelmeta().custom_metadata_map["character"].splitlines()
        self.chars = ["<blank>"] + chars + [" "]
        self.max_side = max_side
        self.min_confidence = min_confidence

    def read(self, bgr: np.ndarray) -> list[TextBox]:
        quads = self.detect(bgr)
        if not quads:
            return []
        strips = [_deskew(bgr, q) for q in quads]
        boxes = []
        for q, (text, conf) in zip(quads, self.recognize(strips), strict=False):
            text = text.strip()
            if text and conf >= self.min_confidence:
                x, y, w, h = cv2.boundingRect(q.astype(np.int32))
                boxes.append(TextBox(text, round(conf, 3), (x, y, w, h)))
        return _lines(boxes)

    def detect(
        self, bgr: np.ndarray, thresh: float = 0.3, box_thresh: float = 0.5, unclip: float = 1.6
    ) -> list[np.ndarray]:
        h, w = bgr.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        rh, rw = max(32, int(round(h * scale / 32)) * 32), max(32, int(round(w * scale / 32)) * 32)
        x = cv2.resize(bgr, (rw, rh)).astype(np.float32) / 127.5 - 1.0
        prob = self.det.run(None, {self.det.get_inputs()[0].name: x.transpose(2, 0, 1)[None]})[0][0, 0]
        mask = cv2.dilate((prob > thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        quads = []
        for c in contours[:1000]:
            (cx, cy), (bw, bh), angle = cv2.minAreaRect(c)
            if min(bw, bh) < 3:
                continue
            bx, by, bw2, bh2 = cv2.boundingRect(c)
            region = np.zeros((bh2, bw2), np.uint8)
            cv2.fillPoly(region, [c - [bx, by]], 1)
            if cv2.mean(prob[by : by + bh2, bx : bx + bw2], region)[0] < box_thresh:
                continue
            d = bw * bh * unclip / (2 * (bw + bh))
            bw, bh = bw + 2 * d, bh + 2 * d
            if min(bw, bh) < 5:
                continue
            pts = cv2.boxPoints(((cx, cy), (bw, bh), angle))
            pts[:, 0] = np.clip(pts[:, 0] * w / rw, 0, w - 1)
            pts[:, 1] = np.clip(pts[:, 1] * h / rh, 0, h - 1)
            quads.append(_clockwise(pts))
        return quads

    def recognize(self, strips: list[np.ndarray], batch: int = 8) -> list[tuple[str, float]]:
        order = np.argsort([s.shape[1] / s.shape[0] for s in strips])
        out: list[tuple[str, float]] = [("", 0.0)] * len(strips)
        name = self.rec.get_inputs()[0].name
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            width = max(320, max(int(math.ceil(48 * strips[j].shape[1] / strips[j].shape[0])) for j in idx))
            x = np.zeros((len(idx), 3, 48, width), np.float32)
            for k, j in enumerate(idx):
                s = strips[j]
                sw = min(width, int(math.ceil(48 * s.shape[1] / s.shape[0])))
                x[k, :, :, :sw] = (cv2.resize(s, (sw, 48)).astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)
            probs = self.rec.run(None, {name: x})[0]
            for k, j in enumerate(idx):
                out[j] = self._ctc(probs[k])
        return out

    def _ctc(self, p: np.ndarray) -> tuple[str, float]:
        best = p.argmax(axis=1)
        keep = (best != 0) & np.r_[True, best[1:] != best[:-1]]
        if not keep.any():
            return "", 0.0
        text = "".join(self.chars[i] if i < len(self.chars) else "" for i in best[keep])
        return text, float(p.max(axis=1)[keep].mean())


def _lines(boxes: list[TextBox]) -> list[TextBox]:
    """Join words the detector split apart (wide gaps) into lines: same height band, gap under 2 heights."""
    lines: list[list[TextBox]] = []
    for b in sorted(boxes, key=lambda b: b.box[0]):
        x, y, w, h = b.box
        for line in lines:
            lx, ly, lw, lh = line[-1].box
            same_band = abs((y + h / 2) - (ly + lh / 2)) < 0.5 * min(h, lh) and 0.5 < h / lh < 2
            if same_band and 0 <= x - (lx + lw) < 2 * max(h, lh):
                line.append(b)
                break
        else:
            lines.append([b])
    out = []
    for line in lines:
        x0 = min(b.box[0] for b in line)
        y0 = min(b.box[1] for b in line)
        x1 = max(b.box[0] + b.box[2] for b in line)
        y1 = max(b.box[1] + b.box[3] for b in line)
        conf = sum(b.confidence * len(b.text) for b in line) / sum(len(b.text) for b in line)
        out.append(TextBox(" ".join(b.text for b in line), round(conf, 3), (x0, y0, x1 - x0, y1 - y0)))
    return sorted(out, key=lambda b: (b.box[1] // max(1, b.box[3]), b.box[0]))


def _clockwise(pts: np.ndarray) -> np.ndarray:
    xs = pts[np.argsort(pts[:, 0])]
    (tl, bl), (tr, br) = xs[:2][np.argsort(xs[:2, 1])], xs[2:][np.argsort(xs[2:, 1])]
    return np.array([tl, tr, br, bl], np.float32)


def _deskew(bgr: np.ndarray, q: np.ndarray) -> np.ndarray:
    w = max(1, int(round(max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[2] - q[3])))))
    h = max(1, int(round(max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2])))))
    m = cv2.getPerspectiveTransform(q, np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32))
    strip = cv2.warpPerspective(bgr, m, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    return np.rot90(strip) if h / w >= 1.5 else strip


@functools.lru_cache(maxsize=2)
def default_reader(max_side: int = 960) -> TextReader:
    """One reader per process: the sessions take about a second to build."""
    return TextReader(max_side=max_side)
