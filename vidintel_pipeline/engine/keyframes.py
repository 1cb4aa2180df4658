"""Keyframe selection on the shared frame stream: the sharpest frame of every shot.

While frames stream past, the sharpest sampled frame (variance of the Laplacian of the luma) of each
short bucket is kept as a small JPEG: the bucket holds its best frame so far and encodes only the winner. Once shot
boundaries are known, each shot takes the best candidate
inside its clean part (transitions excluded), so its keyframe always lies inside it and no two shots share
one. A frame that changes like a cut closes its bucket early (at most once per sample period). Memory stays
bounded: at most one JPEG per bucket and early close.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2

from vidintel_pipeline.media.frames import Frame
from vidintel_pipeline.plugin_api.contracts import TemporalMarker


@dataclass
class Candidate:
    time_s: float
    sharpness: float
    jpeg: bytes


# Thumbnail change (0-255) from which a frame is taken to start a new picture. Real cuts on the dev set change
# 16-60, camera motion inside a shot up to about 10 (tests/plugins/real_footage); a cut below this still gets candidates
# from the next bucket.
NEW_PICTURE_CHANGE = 12.0


class KeyframeSelector:
    def __init__(self, bucket_s: float = 1.0, samples_per_s: float = 4.0, jpeg_quality: int = 85):
        self.bucket_s = bucket_s
        self.period_s = 1.0 / samples_per_s
        self.jpeg_quality = jpeg_quality
        self.candidates: list[Candidate] = []
        self._bucket = -1
        self._best: tuple[float, float, Frame] | None = None
        self._next_t = 0.0
        self._early_t = 0.0

    def process(self, frame: Frame) -> None:
        bucket = int(frame.time_s // self.bucket_s)
        if frame.change >= NEW_PICTURE_CHANGE and self._best is not None and frame.time_s >= self._early_t:
            # a likely cut: close the bucket early, so a shot starting mid-bucket has candidates of its own;
            # at most once per sample period, so a strobe or a whip pan cannot make every frame a candidate
            self._flush()
            self._next_t = frame.time_s
            self._early_t = frame.time_s + self.period_s
        if bucket != self._bucket:
            self._flush()
            self._bucket = bucket
            self._next_t = frame.time_s
        if frame.time_s + 1e-6 < self._next_t:
            return
        self._next_t = frame.time_s + self.period_s
        # sharpness on the cheap point-sampled luma: it ranks frames of one bucket, it is never shown
        _, dev = cv2.meanStdDev(cv2.Laplacian(frame.luma_points(), cv2.CV_16S))
        sharp = float(dev[0, 0]) ** 2
        if cv2.mean(frame.small())[0] < 24:  # never pick a black frame while anything else is on offer
            sharp *= 0.001
        if self._best is not None and sharp <= self._best[1]:
            return
        self._best = (frame.time_s, sharp, frame)  # the bucket's best so far: one decoded frame held at a time

    def flush(self) -> list[Candidate]:
        """Close the current bucket; the candidates so far."""
        self._flush()
        return self.candidates

    def _flush(self) -> None:
        if self._best is not None:
            t, sharp, frame = self._best
            frame.release()  # keep the 320 px picture, not the decoder's full-resolution buffer
            ok, buf = cv2.imencode(".jpg", frame.bgr(), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if ok:
                self.candidates.append(Candidate(t, sharp, buf.tobytes()))
        self._best = None

    def select(self, markers: list[TemporalMarker], duration_s: float) -> list[tuple[int, Candidate]]:
        """(shot index, candidate) for every shot that has a candidate."""
        self._flush()
        shots = shot_spans(markers, duration_s)
        chosen: list[tuple[int, Candidate]] = []
        used: set[float] = set()
        # a transition's end_s is its last blended frame: the shot after it starts one frame later
        blended = {round(m.end_s, 6) for m in markers if m.type == "shot_boundary" and m.end_s > m.start_s}
        for i, (start, end) in enumerate(shots):
            if round(start, 6) in blended:
                start += 1e-3
            # only a picture from inside the shot, and never one another shot already shows: a shot too short
            # for any candidate gets no keyframe rather than its neighbour's
            inside = [c for c in self.candidates if start - 1e-6 <= c.time_s < end and c.time_s not in used]
            if inside:
                best = max(inside, key=lambda c: c.sharpness)
                used.add(best.time_s)
                chosen.append((i, best))
        return chosen


def shot_spans(markers: list[TemporalMarker], duration_s: float) -> list[tuple[float, float]]:
    """The clean part of each shot, from shot_boundary markers (cuts and transitions)."""
    bounds = sorted((m.start_s, m.end_s) for m in markers if m.type == "shot_boundary")
    spans = []
    start = 0.0
    for b_start, b_end in bounds:
        if b_start > start + 1e-6:
            spans.append((start, b_start))
        start = max(start, b_end if b_end > b_start else b_start)
    if duration_s > start + 1e-6:
        spans.append((start, duration_s))
    return spans or [(0.0, duration_s)]
