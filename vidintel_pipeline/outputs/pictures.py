"""Pictures for the Dagster UI, where people would rather look than read: a marker timeline strip and a keyframe
contact sheet, small enough to embed in a materialization's Markdown metadata (a few tens of kB each).

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


def timeline_strip(doc: MemoryDocument) -> bytes:
    """A PNG: one lane per kind of event over the video's duration, with a time axis."""
    dur = max(doc.duration_s, 1e-3)
    h = AXIS_H + LANE_H * len(LANES) + 4
    img = np.full((h, WIDTH, 3), 250, np.uint8)
    span = WIDTH - LABEL_W - 8

    def x(t: float) -> int:
        return LABEL_W + int(round(min(max(t, 0.0), dur) / dur * span))

    rows = {name: AXIS_H + i * LANE_H for i, (name, _) in enumerate(LANES)}
    colors = dict(LANES)
    for name, y in rows.items():
        cv2.putText(img, name, (4, y + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (60, 60, 60), 1, cv2.LINE_AA)
        cv2.line(img, (LABEL_W, y + LANE_H - 1), (WIDTH - 8, y + LANE_H - 1), (225, 225, 225), 1)
    step = next(s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 10**9) if dur / s <= 12)
    t = 0.0
    while t <= dur + 1e-9:
        cv2.line(img, (x(t), AXIS_H - 4), (x(t), h - 4), (235, 235, 235), 1)
        label = f"{int(t // 60)}:{int(t % 60):02d}"
        cv2.putText(img, label, (x(t) + 2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (90, 90, 90), 1, cv2.LINE_AA)
        t += step
    # shots: alternating shades between cuts
    from vidintel_pipeline.outputs.exports import shot_spans

    y = rows["shots"]
    for i, (a, b) in enumerate(shot_spans(doc)):
        shade = colors["shots"] if i % 2 == 0 else tuple(min(255, c + 60) for c in colors["shots"])
        cv2.rectangle(img, (x(a), y + 3), (max(x(a) + 1, x(b) - 1), y + LANE_H - 4), shade, -1)
    for m in doc.markers:
        lane = _lane(m.type, m.label)
        if lane == "shots":
            continue
        y, c = rows[lane], colors[lane]
        x0, x1 = x(m.start_s), x(m.end_s)
        cv2.rectangle(img, (x0, y + 3), (max(x0 + 1, x1), y + LANE_H - 4), c, -1)
    y = rows["speech"]
    for seg in doc.transcript.segments:
        cv2.rectangle(img, (x(seg.start_s), y + 3), (max(x(seg.start_s) + 1, x(seg.end_s)), y + LANE_H - 4),
                      colors["speech"], -1)  # fmt: skip
    ok, png = cv2.imencode(".png", img)
    assert ok
    return png.tobytes()


def contact_sheet(
    keyframes: Iterable[tuple[float, Path]], columns: int = 6, thumb_w: int = 150, limit: int = 36
) -> bytes:
    """A JPEG grid of keyframes with their times (``mm:ss.s``), at most ``limit`` (evenly picked when more)."""
    frames = list(keyframes)
    if len(frames) > limit:
        frames = [frames[round(i * (len(frames) - 1) / (limit - 1))] for i in range(limit)]
    thumbs = []
    for t, path in frames:
        img = cv2.imread(str(path))
        if img is None:
            continue
        th = max(1, round(img.shape[0] * thumb_w / img.shape[1]))
        img = cv2.resize(img, (thumb_w, th), interpolation=cv2.INTER_AREA)
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


def markdown_image(data: bytes, mime: str, alt: str) -> str:
    """Markdown with the image inline (a data URI): the UI shows it without reaching any storage."""
    return f"![{alt}](data:{mime};base64,{base64.b64encode(data).decode()})"
