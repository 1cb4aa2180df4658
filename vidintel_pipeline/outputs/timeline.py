"""Timelines for editors through OpenTimelineIO: ``.otio``, CMX3600 EDL and FCP 7 XML, frame-exact at the source rate.

One clip per shot, each a source range into the video at its exact rational rate (30000/1001, not 29.97 or 30)
and offset by the source's own start timecode (the container's ``timecode`` tag or tmcd track), so an editor
conforming the list lands on the very frame the detector found: rounding 29.97 to 30 put a cut at frame 14000
14 frames late after 8 minutes. Markers become OTIO markers on the clip they fall in, with type, label,
confidence and plugins in their metadata.

The EDL is written by OTIO's CMX3600 adapter, whose writer infers drop-frame from the rate alone; the timecodes
are therefore re-rendered here from their frame numbers, drop-frame at 29.97 and 59.94 when the source's
timecode is drop-frame (``;``), non-drop otherwise, under the matching ``FCM`` line, and the record side
starts at the source's start timecode.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Optional

import opentimelineio as otio

from vidintel_pipeline.plugin_api.contracts import MemoryDocument

RT = otio.opentime.RationalTime
DROP_FRAME_RATES = (Fraction(30000, 1001), Fraction(60000, 1001))
MARKER_COLORS = {
    "shot_boundary": otio.schema.MarkerColor.RED,
    "scene_change": otio.schema.MarkerColor.ORANGE,
    "technical_cue": otio.schema.MarkerColor.YELLOW,
    "object_appearance": otio.schema.MarkerColor.GREEN,
    "text_in_video": otio.schema.MarkerColor.CYAN,
    "custom_event": otio.schema.MarkerColor.PURPLE,
}
_TC = re.compile(r"\d{2}:\d{2}:\d{2}[:;]\d{2}")


def source_rate(memory: MemoryDocument) -> Fraction:
    """The source's exact frame rate (``fps_rational`` from the probe; older memories: the float, made exact)."""
    from vidintel_pipeline.media.probe import exact_rate

    text = memory.source.get("fps_rational")
    if text:
        return Fraction(text)
    return exact_rate(Fraction(float(memory.source.get("fps") or 25.0)).limit_denominator(100000)) or Fraction(25)


def timecode_rate(memory: MemoryDocument) -> Fraction:
    """The rate EDL and FCP XML count in: the source's when SMPTE timecode has it, else the nearest of 24, 25, 30,
    48, 50 and 60 (a variable-rate phone video averaging 20 fps has no SMPTE timecode; OTIO refuses it)."""
    rate = source_rate(memory)
    if RT.is_smpte_timecode_rate(float(rate)):
        return rate
    return min((Fraction(r) for r in (24, 25, 30, 48, 50, 60)), key=lambda r: (abs(r - rate), -r))


def is_drop_frame(memory: MemoryDocument, rate: Optional[Fraction] = None) -> bool:
    tc = memory.source.get("timecode") or ""
    return (rate or source_rate(memory)) in DROP_FRAME_RATES and (";" in tc or "." in tc)


def start_frame(memory: MemoryDocument, rate: Optional[Fraction] = None) -> int:
    """The source's start timecode as a frame count at ``rate`` (drop-frame counted as drop-frame), 0 without one."""
    tc = memory.source.get("timecode")
    if not tc:
        return 0
    rate = rate or source_rate(memory)
    if not RT.is_smpte_timecode_rate(float(rate)):  # count the timecode at its own rate, then in ours
        at = timecode_rate(memory)
        seconds = otio.opentime.from_timecode(tc.replace(".", ";"), float(at)).to_seconds()
        return int(round(seconds * float(rate)))
    return int(round(otio.opentime.from_timecode(tc.replace(".", ";"), float(rate)).value))


def frame_of(t: float, rate: Fraction) -> int:
    """Frame index of time ``t`` on vidintel's timeline (frame 0 at 0.0)."""
    return int(round(Fraction(t).limit_denominator(10**6) * rate))


def shot_frames(memory: MemoryDocument, rate: Optional[Fraction] = None) -> list[tuple[int, int]]:
    """``[first, end)`` frames of each shot, split at every shot boundary's first frame."""
    rate = rate or source_rate(memory)
    total = max(1, frame_of(memory.duration_s, rate))
    cuts = sorted({frame_of(m.start_s, rate) for m in memory.markers if m.type == "shot_boundary"} - {0})
    edges = [0] + [c for c in cuts if 0 < c < total] + [total]
    return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b > a]


def build_timeline(
    memory: MemoryDocument, source_url: Optional[str] = None, rate: Optional[Fraction] = None
) -> otio.schema.Timeline:
    """One clip per shot at ``rate`` (default: the source's exact rate)."""
    rate = rate or source_rate(memory)
    r = float(rate)
    start = start_frame(memory, rate)
    name = str(memory.source.get("key") or memory.video_id).rsplit("/", 1)[-1]
    shots = shot_frames(memory, rate)
    total = shots[-1][1] if shots else 0
    tl = otio.schema.Timeline(name=f"{memory.project_id} {memory.video_id}", global_start_time=RT(start, r))
    tl.metadata["vidintel"] = {
        "project_id": memory.project_id,
        "video_id": memory.video_id,
        "rate": f"{rate.numerator}/{rate.denominator}",
        "start_timecode": memory.source.get("timecode"),
        "drop_frame": is_drop_frame(memory, rate),
        "source_rate": str(source_rate(memory)),
    }
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    reel = re.sub(r"[^A-Za-z0-9_]", "_", memory.video_id)[:8].upper() or "AX"
    clips = []
    for i, (a, b) in enumerate(shots, 1):
        ref = otio.schema.ExternalReference(
            target_url=source_url or name,
            available_range=otio.opentime.TimeRange(RT(start, r), RT(total, r)),
        )
        clip = otio.schema.Clip(
            name=f"{memory.video_id} shot {i}",
            media_reference=ref,
            source_range=otio.opentime.TimeRange(RT(start + a, r), RT(b - a, r)),
        )
        clip.metadata["cmx_3600"] = {"reel": reel}
        clip.metadata["vidintel"] = {"shot": i, "first_frame": a, "last_frame": b - 1}
        track.append(clip)
        clips.append((a, b, clip))
    for m in memory.markers:
        f0, f1 = frame_of(m.start_s, rate), frame_of(m.end_s, rate)
        host = next((c for a, b, c in clips if a <= f0 < b), clips[-1][2] if clips else None)
        if host is None:
            continue
        host.markers.append(
            otio.schema.Marker(
                name=f"{m.type}: {m.label}"[:120],
                marked_range=otio.opentime.TimeRange(RT(start + f0, r), RT(max(0, f1 - f0), r)),
                color=MARKER_COLORS.get(m.type, otio.schema.MarkerColor.BLUE),
                metadata={
                    "vidintel": {
                        "type": m.type,
                        "label": m.label,
                        "confidence": m.confidence,
                        "plugins": m.attributes.get("plugins", [m.plugin]),
                        "start_s": m.start_s,
                        "end_s": m.end_s,
                    }
                },
            )
        )
    return tl


def to_otio(memory: MemoryDocument, source_url: Optional[str] = None, **_: Any) -> str:
    return otio.adapters.write_to_string(build_timeline(memory, source_url), "otio_json")


def to_fcpxml(memory: MemoryDocument, source_url: Optional[str] = None, **_: Any) -> str:
    """Final Cut Pro 7 XML (xmeml): Premiere, Resolve and Avid import it. The adapter writes every timecode as
    non-drop; each one is re-rendered from its frame number on the source's clock (DF or NDF)."""
    import xml.etree.ElementTree as ET

    rate = timecode_rate(memory)
    text = otio.adapters.write_to_string(build_timeline(memory, source_url, rate), "fcp_xml")
    r = float(rate)
    df = is_drop_frame(memory, rate)
    root = ET.fromstring(text)
    for node in root.iter("timecode"):
        frame, string, fmt = node.find("frame"), node.find("string"), node.find("displayformat")
        if frame is None or frame.text is None or string is None:
            continue
        string.text = otio.opentime.to_timecode(RT(int(frame.text), r), r, drop_frame=df)
        if fmt is not None:
            fmt.text = "DF" if df else "NDF"
    ET.indent(root, space="    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE xmeml>\n' + ET.tostring(root, encoding="unicode") + "\n"


def to_edl(memory: MemoryDocument, source_url: Optional[str] = None, **_: Any) -> str:
    """CMX3600: one event per shot, source timecodes on the source's own clock, DF or NDF as the source is."""
    rate = timecode_rate(memory)
    tl = build_timeline(memory, source_url, rate)
    r = float(rate)
    df = is_drop_frame(memory, rate)
    start = start_frame(memory, rate)
    text = otio.adapters.write_to_string(tl, "cmx_3600", rate=r, style="avid")

    def frames(tc: str) -> int:
        return int(round(otio.opentime.from_timecode(tc, r).value))

    def tc(n: int) -> str:
        return otio.opentime.to_timecode(RT(n, r), r, drop_frame=df)

    out = []
    for line in text.splitlines():
        found = _TC.findall(line)
        if re.match(r"^\d{3}\s", line) and len(found) == 4:
            s_in, s_out, r_in, r_out = (frames(x) for x in found)
            head = line[: line.index(found[0])]
            line = head + " ".join([tc(s_in), tc(s_out), tc(r_in + start), tc(r_out + start)])
        elif found:  # * LOC: and other comment lines: the same frame on the chosen clock
            for x in found:
                line = line.replace(x, tc(frames(x)), 1)
        out.append(line)
        if line.startswith("TITLE:"):
            out.append(f"FCM: {'DROP FRAME' if df else 'NON-DROP FRAME'}")
    return "\n".join(out).rstrip("\n") + "\n"


def reel_timeline(name: str, query: str, clips: list[Any], memories: dict[str, MemoryDocument]) -> str:
    """A reel's clips as an ``.otio`` timeline: each clip a source range into its own video (its rate, its start
    timecode), so an editor can rebuild or re-trim the reel from the sources instead of the rendered file."""
    tl = otio.schema.Timeline(name=name)
    tl.metadata["vidintel"] = {"query": query}
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    for i, c in enumerate(clips, 1):
        memory = memories[c.video_id]
        rate = source_rate(memory)
        r, start = float(rate), start_frame(memory)
        a, b = frame_of(c.start_s, rate), max(frame_of(c.start_s, rate) + 1, frame_of(c.end_s, rate))
        clip = otio.schema.Clip(
            name=f"{c.video_id} {c.start_s:.2f}-{c.end_s:.2f}s",
            media_reference=otio.schema.ExternalReference(
                target_url=c.source_uri,
                available_range=otio.opentime.TimeRange(RT(start, r), RT(frame_of(memory.duration_s, rate), r)),
            ),
            source_range=otio.opentime.TimeRange(RT(start + a, r), RT(b - a, r)),
        )
        clip.metadata["vidintel"] = {"video_id": c.video_id, "why": c.why, "reel_start_s": c.reel_start_s, "index": i}
        track.append(clip)
    return otio.adapters.write_to_string(tl, "otio_json")
