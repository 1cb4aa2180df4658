"""A memory document rendered for the tools people take it to: players, spreadsheets and editors.

* **SRT** and **WebVTT** subtitles, written by pysubs2, from transcript segments, long segments split into
  cues of at most ``max_cue_s`` seconds / ``max_cue_words`` words at word boundaries (word timestamps when
  present), with the speaker as a ``[spk_0]`` prefix (SRT) or a ``<v spk_0>`` voice span (VTT) when it is
  known, VTT text escaped (``&amp;``, ``&lt;``, ``&gt;``);
* **CSV** of markers, one row per marker, for spreadsheets;
* **Timelines** for editors (:mod:`vidintel_pipeline.outputs.timeline`, through OpenTimelineIO): ``.otio``,
  CMX3600 **EDL** and **FCP 7 XML**, one clip per shot at the source's exact rate and start timecode;
* **JSON**: the memory document itself.

Cue and event times are never negative and never decrease, whatever the plugins returned.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Callable

from vidintel_pipeline.plugin_api.contracts import MemoryDocument, TranscriptSegment, Word

FORMATS = ("srt", "vtt", "json", "csv", "edl", "otio", "fcpxml")
EXTENSIONS = {"fcpxml": "fcp7.xml"}  # FCP 7 XML is .xml (.fcpxml is Final Cut Pro X's different format)


def extension(fmt: str) -> str:
    return EXTENSIONS.get(fmt, fmt)


def render(memory: MemoryDocument, fmt: str, **kw: Any) -> str:
    from vidintel_pipeline.outputs.timeline import to_edl, to_fcpxml, to_otio

    writers: dict[str, Callable[..., str]] = {
        "srt": to_srt,
        "vtt": to_vtt,
        "json": to_json,
        "csv": to_csv,
        "edl": to_edl,
        "otio": to_otio,
        "fcpxml": to_fcpxml,
    }
    if fmt not in writers:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt not in ("edl", "otio", "fcpxml"):
        kw.pop("source_url", None)  # only timelines point at the source
    return writers[fmt](memory, **kw)


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


def _subtitles(memory: MemoryDocument, fmt: str, text_of: Callable[[str, str | None], str], **kw: Any) -> str:
    """The cues written by pysubs2; ``keep_ssa_tags``: a transcript's ``{braces}`` are words, not SSA overrides."""
    import pysubs2

    subs = pysubs2.SSAFile()
    for start, end, text, speaker in cues(memory, **kw):
        subs.events.append(
            pysubs2.SSAEvent(start=int(round(start * 1000)), end=int(round(end * 1000)), text=text_of(text, speaker))
        )
    return subs.to_string(fmt, apply_styles=False, keep_ssa_tags=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())  # a blank line would end the cue


def to_srt(memory: MemoryDocument, **kw: Any) -> str:
    return _subtitles(memory, "srt", lambda text, speaker: _one_line(f"[{speaker}] {text}" if speaker else text), **kw)


def vtt_escape(text: str) -> str:
    """WebVTT cue text: ``&``, ``<`` and ``>`` as character references (so ``-->`` cannot end a cue early)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(memory: MemoryDocument, **kw: Any) -> str:
    def line(text: str, speaker: str | None) -> str:
        body = vtt_escape(_one_line(text))
        return f"<v {vtt_escape(_one_line(speaker))}>{body}" if speaker else body

    return _subtitles(memory, "vtt", line, **kw)


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
