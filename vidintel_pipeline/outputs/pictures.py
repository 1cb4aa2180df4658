"""Pictures for the Dagster UI, where people would rather look than read: a marker timeline strip and a keyframe
contact sheet, small enough to embed in a materialization's Markdown metadata (a few tens of kB each), and a
bars-only preview of the strip small enough (under 1,000 characters) for the UI to show inline; and a thumbnail
per search result, its video's keyframe nearest the moment.

The strip puts every kind of event on one time axis, a lane each: shots (alternating shades, cuts as lines),
transitions, scene changes, technical cues, faces and objects, text in the picture, speech, custom events.
The sheet shows each shot's keyframe with its time.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from vidintel_pipeline.plugin_api.contracts import MemoryDocument

WIDTH = 960
LANE_H = 18
LABEL_W = 110
AXIS_H = 18
# BGR
LANES: list[tuple[str, tuple[int, int, int]]] = [
    ("shots", (170, 120, 60)),
    ("transitions", (60, 60, 220)),
    ("scenes", (40, 140, 240)),
    ("technical cues", (30, 200, 230)),
    ("faces, objects", (80, 180, 60)),
    ("text on screen", (200, 200, 40)),
    ("speech", (200, 80, 160)),
    ("other events", (160, 160, 160)),
]


def _lane(m_type: str, label: str) -> str:
    if m_type == "shot_boundary":
        return "shots" if label == "cut" else "transitions"
    return {
        "scene_change": "scenes",
        "technical_cue": "technical cues",
        "object_appearance": "faces, objects",
        "face_detection": "faces, objects",
        "text_in_video": "text on screen",
    }.get(m_type, "other events")


def timeline_strip(doc: MemoryDocument, width: int = WIDTH, lane_h: int = LANE_H, labels: bool = True) -> bytes:
    """A PNG: one lane per kind of event over the video's duration, with a time axis and lane names (``labels``)
    or without (a preview: solid bars only, which compress to a few hundred bytes)."""
    dur = max(doc.duration_s, 1e-3)
    label_w, axis_h, margin = (LABEL_W, AXIS_H, 8) if labels else (0, 0, 0)
    h = axis_h + lane_h * len(LANES) + (4 if labels else 0)
    img = np.full((h, width, 3), 250, np.uint8)
    span = width - label_w - margin
    pad = 3 if lane_h >= 10 else 1

    def x(t: float) -> int:
        return label_w + int(round(min(max(t, 0.0), dur) / dur * (span - 1)))

    rows = {name: axis_h + i * lane_h for i, (name, _) in enumerate(LANES)}
    colors = dict(LANES)
    if labels:
        for name, y in rows.items():
            cv2.putText(img, name, (4, y + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (60, 60, 60), 1, cv2.LINE_AA)
            cv2.line(img, (label_w, y + lane_h - 1), (width - margin, y + lane_h - 1), (225, 225, 225), 1)
        step = next(s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 10**9) if dur / s <= 12)
        t = 0.0
        while t <= dur + 1e-9:
            cv2.line(img, (x(t), axis_h - 4), (x(t), h - 4), (235, 235, 235), 1)
            label = f"{int(t // 60)}:{int(t % 60):02d}"
            cv2.putText(img, label, (x(t) + 2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (90, 90, 90), 1, cv2.LINE_AA)
            t += step

    def bar(lane: str, a: float, b: float, color: tuple[int, int, int]) -> None:
        y, x0 = rows[lane], x(a)
        cv2.rectangle(img, (x0, y + pad), (max(x0 + 1, x(b)), y + lane_h - 1 - pad), color, -1)

    # shots: alternating shades between cuts
    from vidintel_pipeline.outputs.exports import shot_spans

    dark = colors["shots"]
    light = (min(255, dark[0] + 60), min(255, dark[1] + 60), min(255, dark[2] + 60))
    for i, (a, b) in enumerate(shot_spans(doc)):
        bar("shots", a, b, dark if i % 2 == 0 else light)
    for m in doc.markers:
        lane = _lane(m.type, m.label)
        if lane != "shots":
            bar(lane, m.start_s, m.end_s, colors[lane])
    for seg in doc.transcript.segments:
        bar("speech", seg.start_s, seg.end_s, colors["speech"])
    ok, png = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    return png.tobytes()


# the Dagster UI renders Markdown metadata shorter than 1,000 characters inline, longer behind "[Show Markdown]"
INLINE_MD_CHARS = 1000


def timeline_preview(doc: MemoryDocument) -> str | None:
    """Markdown for a bars-only strip small enough to show inline in the asset page's metadata table (the widest of
    320, 240 and 160 px that fits: the table's value column is about 360 px wide), or None when even the narrowest
    does not (thousands of alternating shots)."""
    for width in (320, 240, 160):
        md = markdown_image(timeline_strip(doc, width=width, lane_h=5, labels=False), "image/png", "timeline")
        if len(md) < INLINE_MD_CHARS:
            return md
    return None


def contact_sheet(
    keyframes: Iterable[tuple[float, Path]], columns: int = 6, thumb_w: int = 150, limit: int = 36
) -> bytes:
    """A JPEG grid of keyframes with their times (``mm:ss.s``), at most ``limit`` (evenly picked when more)."""
    frames = list(keyframes)
    if len(frames) > limit:
        frames = [frames[round(i * (len(frames) - 1) / (limit - 1))] for i in range(limit)]
    thumbs = []
    for t, path in frames:
        img = _scaled(path, thumb_w)
        if img is None:
            continue
        th = img.shape[0]
        label = f"{int(t // 60)}:{t % 60:04.1f}"
        cv2.rectangle(img, (0, th - 16), (len(label) * 8 + 6, th), (0, 0, 0), -1)
        cv2.putText(img, label, (3, th - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        thumbs.append(img)
    if not thumbs:
        return b""
    th = max(t.shape[0] for t in thumbs)
    rows = (len(thumbs) + columns - 1) // columns
    sheet = np.full((rows * (th + 4) + 4, min(columns, len(thumbs)) * (thumb_w + 4) + 4, 3), 30, np.uint8)
    for i, img in enumerate(thumbs):
        r, c = divmod(i, columns)
        y, x = 4 + r * (th + 4), 4 + c * (thumb_w + 4)
        sheet[y : y + img.shape[0], x : x + thumb_w] = img
    ok, jpg = cv2.imencode(".jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, 72])
    assert ok
    return jpg.tobytes()


def _scaled(path: Path, width: int) -> np.ndarray | None:
    """The image at ``path`` resized to ``width`` (aspect kept), or None when it does not decode."""
    img = cv2.imread(str(path))
    if img is None:
        return None
    h = max(1, round(img.shape[0] * width / img.shape[1]))
    return cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA)


def thumbnail(path: Path, width: int = 112) -> bytes:
    """A small JPEG of one keyframe (about 2-4 kB at 112 px), or b"" when the file does not decode."""
    img = _scaled(path, width)
    if img is None:
        return b""
    ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 70])
    return jpg.tobytes() if ok else b""


def nearest_keyframe(keyframes: list[tuple[float, str]], t: float) -> str | None:
    """The name of the keyframe (time, name) closest to ``t``: the picture of a moment."""
    return min(keyframes, key=lambda k: abs(k[0] - t))[1] if keyframes else None


def markdown_image(data: bytes, mime: str, alt: str) -> str:
    """Markdown with the image inline (a data URI): the UI shows it without reaching any storage."""
    return f"![{alt}](data:{mime};base64,{base64.b64encode(data).decode()})"
