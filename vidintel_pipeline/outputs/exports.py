"""A memory document rendered for the tools people take it to: players, spreadsheets and editors.

* **SRT** and **WebVTT** subtitles from transcript segments, long segments split into cues of at most
  ``max_cue_s`` seconds / ``max_cue_words`` words at word boundaries (word timestamps when present), with
  the speaker as a ``[spk_0]`` prefix (SRT) or a ``<v spk_0>`` voice span (VTT) when it is known;
* **CSV** of markers, one row per marker, for spreadsheets;
* **EDL** (CMX3600) of the shots, so an editing tool can conform the cut list: one event per shot,
  source in/out timecodes on the video's own frame rate, record timecodes laid end to end;
* **JSON**: the memory document itself.

Cue and event times are never negative and never decrease, whatever the plugins returned.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any, Callable

from vidintel_pipeline.plugin_api.contracts import MemoryDocument, TranscriptSegment, Word

FORMATS = ("srt", "vtt", "json", "csv", "edl")  # also the file extensions


def render(memory: MemoryDocument, fmt: str, **kw: Any) -> str:
    try:
        fn: Callable[..., str] = {"srt": to_srt, "vtt": to_vtt, "json": to_json, "csv": to_csv, "edl": to_edl}[fmt]
    except KeyError:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}") from None
    return fn(memory, **kw)


# subtitles -------------------------------------------------------------------------------------------
def cues(
    memory: MemoryDocument, max_cue_s: float = 6.0, max_cue_words: int = 14
) -> list[tuple[float, float, str, str | None]]:
    """``(start, end, text, speaker)`` per cue: monotonic, non-overlapping, at most ``max_cue_s`` long."""
    out: list[tuple[float, float, str, str | None]] = []
    for seg in memory.transcript.segments:
        for start, end, text, speaker in _split(seg, max_cue_s, max_cue_words):
            if not text:
                continue
            start = max(start, out[-1][1] if out else 0.0)
            end = max(end, start + 0.2)
            out.append((round(start, 3), round(end, 3), text, speaker))
    return out


def _split(seg: TranscriptSegment, max_s: float, max_words: int):
    words = seg.words
    if not words or (seg.end_s - seg.start_s <= max_s and len(words) <= max_words):
        yield seg.start_s, seg.end_s, seg.text.strip(), seg.speaker
        return
    group: list[Word] = []
    for w in words:
        if group and (w.end_s - group[0].start_s > max_s or len(group) >= max_words or w.speaker != group[-1].speaker):
            yield (
                group[0].start_s,
                group[-1].end_s,
                " ".join(x.word.strip() for x in group),
                group[0].speaker or seg.speaker,
            )
            group = []
        group.append(w)
    if group:
        yield (
            group[0].start_s,
            group[-1].end_s,
            " ".join(x.word.strip() for x in group),
            group[0].speaker or seg.speaker,
        )


def _clock(t: float, sep: str) -> str:
    ms = int(round(t * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(memory: MemoryDocument, **kw: Any) -> str:
    blocks = []
    for i, (start, end, text, speaker) in enumerate(cues(memory, **kw), 1):
        line = f"[{speaker}] {text}" if speaker else text
        blocks.append(f"{i}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{line}\n")
    return "\n".join(blocks)


def to_vtt(memory: MemoryDocument, **kw: Any) -> str:
    blocks = ["WEBVTT\n"]
    for start, end, text, speaker in cues(memory, **kw):
        text = text.replace("-->", "->")
        line = f"<v {speaker}>{text}" if speaker else text
        blocks.append(f"{_clock(start, '.')} --> {_clock(end, '.')}\n{line}\n")
    return "\n".join(blocks)


# data ------------------------------------------------------------------------------------------------
def to_json(memory: MemoryDocument, **_: Any) -> str:
    return json.dumps(memory.model_dump(mode="json"), indent=2) + "\n"


CSV_FIELDS = (
    "project_id",
    "video_id",
    "type",
    "label",
    "start_s",
    "end_s",
    "duration_s",
    "confidence",
    "plugin",
    "plugins",
)


def to_csv(memory: MemoryDocument, **_: Any) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for m in sorted(memory.markers, key=lambda m: (m.start_s, m.end_s, m.type, m.label)):
        w.writerow(
            [
                memory.project_id,
                memory.video_id,
                m.type,
                m.label,
                f"{m.start_s:.3f}",
                f"{m.end_s:.3f}",
                f"{m.end_s - m.start_s:.3f}",
                f"{m.confidence:.3f}",
                m.plugin,
                ";".join(m.attributes.get("plugins", [m.plugin])),
            ]
        )
    return buf.getvalue()


# editing ---------------------------------------------------------------------------------------------
def shot_spans(memory: MemoryDocument) -> list[tuple[float, float]]:
    """Shots between consecutive shot boundaries (a transition belongs to the shot it leads into)."""
    bounds = sorted({round(m.start_s, 3) for m in memory.markers if m.type == "shot_boundary"} - {0.0})
    edges = [0.0] + [b for b in bounds if 0 < b < memory.duration_s] + [memory.duration_s]
    return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b - a > 1e-3]


def _timecode(t: float, fps: int) -> str:
    frames = int(round(t * fps))
    h, rem = divmod(frames, 3600 * fps)
    m, rem = divmod(rem, 60 * fps)
    s, f = divmod(rem, fps)
    return f"{h:02d}:{m:02d}:{s:02d}:{f:02d}"


def edl_fps(memory: MemoryDocument) -> int:
    fps = float(memory.source.get("fps") or 25.0)
    return max(1, int(math.floor(fps + 0.5)))


def to_edl(memory: MemoryDocument, reel: str = "AX", **_: Any) -> str:
    """CMX3600: ``NNN  REEL  V  C  src_in src_out rec_in rec_out`` per shot, non-drop-frame timecode."""
    fps = edl_fps(memory)
    lines = [f"TITLE: {memory.project_id} {memory.video_id}", "FCM: NON-DROP FRAME", ""]
    rec = 0.0
    clip = str(memory.source.get("key", memory.video_id)).rsplit("/", 1)[-1]
    for i, (a, b) in enumerate(shot_spans(memory), 1):
        length = b - a
        lines.append(
            f"{i:03d}  {reel:<8} V     C        {_timecode(a, fps)} {_timecode(b, fps)} "
            f"{_timecode(rec, fps)} {_timecode(rec + length, fps)}"
        )
        lines.append(f"* FROM CLIP NAME: {clip}")
        lines.append("")
        rec += length
    return "\n".join(lines)
