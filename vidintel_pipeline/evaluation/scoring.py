"""Scores of one plugin's output against one video's truth: event counts per capability, summed over videos.

Every figure is an F1 of one-to-one matches (transcription: 1 - WER), so a plugin that finds everything by
marking every frame scores low. The tolerances are the tests' own: a hard cut within one frame, a gradual
transition overlapping the labelled span (and, for dissolve / fade_in / fade_out, named the same), colour bars
and black frames frame by frame, a scene change within half a second (scene truth is a judgement, and a fade's
"first frame" is not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from vidintel_pipeline.evaluation.truth import GRADUAL_TYPES, VideoTruth

CUT_TOLERANCE_FRAMES = 1
SCENE_TOLERANCE_S = 0.5
SHOT_FEATURES = ("shot_detection", "shot_boundary", "gradual_transitions")
SPAN_FEATURES = ("color_bars", "black_frames")
SCENE_FEATURES = ("scene_change", "scene_detection")
SCORED_FEATURES = (*SHOT_FEATURES, *GRADUAL_TYPES, *SPAN_FEATURES, *SCENE_FEATURES, "transcription")


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __iadd__(self, other: "Counts") -> "Counts":
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn
        return self

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 1.0 if d == 0 else 2 * self.tp / d


def _match(pred: list[tuple[float, float]], truth: list[tuple[float, float]], slack: float) -> Counts:
    """One-to-one greedy matching of intervals that overlap within ``slack`` (nearest centres first)."""
    pairs = sorted(
        (abs((p[0] + p[1]) - (t[0] + t[1])), i, j)
        for i, p in enumerate(pred)
        for j, t in enumerate(truth)
        if p[0] <= t[1] + slack and p[1] >= t[0] - slack
    )
    used_p: set[int] = set()
    used_t: set[int] = set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return Counts(tp=len(used_p), fp=len(pred) - len(used_p), fn=len(truth) - len(used_t))


def _frames(m: Any, fps: float) -> tuple[float, float]:
    return (round(m.start_s * fps), round(m.end_s * fps))


def score_markers(markers: Iterable[Any], truth: VideoTruth, features: Iterable[str]) -> dict[str, Counts]:
    """Counts for each of ``features`` that ``truth`` labels, from markers (``TemporalMarker``-like objects)."""
    markers = list(markers)
    fps = truth.fps
    out: dict[str, Counts] = {}
    boundaries = [m for m in markers if m.type == "shot_boundary"]
    for f in features:
        if f in SHOT_FEATURES and truth.shots_labelled:
            # every boundary: a cut within a frame of a labelled cut, a gradual one overlapping a labelled span
            t = [(c, c) for c in truth.cuts or []] + [(g["start_frame"], g["end_frame"]) for g in truth.gradual or []]
            pred = [_frames(m, fps) for m in boundaries]
            if f == "gradual_transitions":
                t = [(g["start_frame"], g["end_frame"]) for g in truth.gradual or []]
                pred = [_frames(m, fps) for m in boundaries if m.label != "cut"]
            out[f] = _match(pred, t, CUT_TOLERANCE_FRAMES)
        elif f in GRADUAL_TYPES and truth.shots_labelled:
            t = [(g["start_frame"], g["end_frame"]) for g in truth.gradual or [] if g["type"] == f]
            pred = [_frames(m, fps) for m in boundaries if m.label == f]
            out[f] = _match(pred, t, CUT_TOLERANCE_FRAMES)
        elif f in SPAN_FEATURES and f in truth.spans:
            want = {x for a, b in truth.spans[f] for x in range(a, b + 1)}
            got = {
                x
                for m in markers
                if m.label == f
                for x in range(round(m.start_s * fps), max(round(m.start_s * fps) + 1, round(m.end_s * fps)))
            }
            out[f] = Counts(tp=len(want & got), fp=len(got - want), fn=len(want - got))
        elif f in SCENE_FEATURES and truth.scene_changes is not None:
            t = [(c / fps, c / fps) for c in truth.scene_changes]
            # a scene change marks its transition; the new scene starts at ``starts_at_s`` (after a fade's black)
            starts = [(getattr(m, "attributes", None) or {}).get("starts_at_s", m.start_s) for m in markers]
            pred = [(t, t) for m, t in zip(markers, starts, strict=True) if m.type == "scene_change"]
            out[f] = _match(pred, t, SCENE_TOLERANCE_S)
    return out


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> Optional[float]:
    """Word-level Levenshtein distance over the reference's length (lower case, punctuation dropped)."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return None
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / len(ref)
