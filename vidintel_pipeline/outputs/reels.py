"""Highlight reels: the moments a search or a marker filter found, cut from their sources into one MP4.

Cutting is smart-copy where the sources allow it. A clip ``[start, end)`` of an H.264/HEVC source is cut
as a short re-encoded *head* from ``start`` to the first keyframe after it, then the rest copied packet for
packet from that keyframe to the last keyframe before ``end``, then a re-encoded *tail*. A clip with fewer
than two keyframes inside is re-encoded whole. Parts are written as MPEG-TS, whose parameter sets
travel in-band, so copied and re-encoded parts join without a decoder reset, then concatenated into an
MP4 by stream copy. The sound is re-encoded in one pass (cheap, and sample-exact with the picture),
with silence for clips whose source has none.

Sources that differ in codec, size, frame rate or pixel format cannot share one stream: then every clip
is re-encoded to the first clip's size and rate.

An OpenTimelineIO timeline (``{name}.otio``: source ranges into each source video, for an editor to conform)
and a JSON manifest beside the reel list each clip: its video, source URI and time range, where it sits in
the reel, why it was chosen and how many of its seconds were copied or re-encoded.
Cutting each clip is :mod:`vidintel_pipeline.outputs.reel_cuts`.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vidintel_pipeline.media import probe
from vidintel_pipeline.media.ffmpeg import run_ffmpeg
from vidintel_pipeline.outputs.reel_cuts import (
    COPYABLE,
    Clip,
    CompileError,
    cut_audio,
    encode_span,
    frame_times,
    smart_cut,
)
from vidintel_pipeline.plugin_api.contracts import MemoryDocument
from vidintel_pipeline.storage.layout import memories_prefix, memory_key, memory_keys, project_output_key, validate_id
from vidintel_pipeline.storage.stores import Store


@dataclass
class Reel:
    project_id: str
    name: str
    query: str
    clips: list[Clip] = field(default_factory=list)
    duration_s: float = 0.0
    uri: str = ""
    manifest_uri: str = ""
    timeline_uri: str = ""  # the clips as an OpenTimelineIO timeline into the source videos
    method: str = ""  # smart_copy | reencode

    def manifest(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "name": self.name,
            "query": self.query,
            "uri": self.uri,
            "timeline_uri": self.timeline_uri,
            "duration_s": round(self.duration_s, 3),
            "method": self.method,
            "copied_s": round(sum(c.copied_s for c in self.clips), 3),
            "reencoded_s": round(sum(c.reencoded_s for c in self.clips), 3),
            "clips": [asdict(c) | {"duration_s": round(c.duration_s, 3)} for c in self.clips],
        }


def choose_clips(
    moments: list[dict[str, Any]],
    durations: dict[str, float],
    *,
    max_seconds: float,
    pad_s: float = 0.5,
    min_clip_s: float = 1.0,
) -> list[Clip]:
    """Best-first moments -> padded, merged clips whose total stays within ``max_seconds``.

    ``moments`` are dicts with ``video_id``, ``start_s``, ``end_s`` and ``why``, best first. Clips of one
    video that touch are merged; the reel keeps the order of the videos' timelines.
    """
    if max_seconds <= 0:
        raise CompileError("max_seconds must be positive")
    chosen: list[Clip] = []
    total = 0.0
    for m in moments:
        dur = durations.get(m["video_id"])
        if dur is None:
            continue
        s = max(0.0, float(m["start_s"]) - pad_s)
        e = min(dur, max(float(m["end_s"]), float(m["start_s"]) + min_clip_s) + pad_s)
        overlap = next((c for c in chosen if c.video_id == m["video_id"] and s <= c.end_s and e >= c.start_s), None)
        if overlap:
            grow = max(0.0, overlap.start_s - s) + max(0.0, e - overlap.end_s)
            if total + grow <= max_seconds + 1e-6:
                overlap.start_s, overlap.end_s = min(s, overlap.start_s), max(e, overlap.end_s)
                total += grow
            continue
        room = max_seconds - total
        if room < min(min_clip_s, e - s):
            break
        e = min(e, s + room)
        chosen.append(Clip(m["video_id"], round(s, 3), round(e, 3), m.get("why", "")))
        total += e - s
    return sorted(chosen, key=lambda c: (c.video_id, c.start_s))


def reel_name(query: str, params: dict[str, Any]) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-")[:40] or "reel"
    digest = hashlib.sha256(json.dumps({"q": query, **params}, sort_keys=True).encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def build_reel(ingest: Store, output: Store, project_id: str, clips: list[Clip], *, query: str, name: str) -> Reel:
    """Cut ``clips`` into ``compilations/{name}.mp4`` with its manifest; both appear whole or not at all."""
    validate_id(project_id, "project id")
    if not clips:
        raise CompileError(f"nothing to compile for {query!r} in project {project_id}: no moment matched")
    reel = Reel(project_id, name, query, clips)
    sources: dict[str, tuple[Path, Any, tuple[list[float], list[float]]]] = {}
    uris: dict[str, str] = {}
    memories: dict[str, MemoryDocument] = {}
    for c in clips:
        if c.video_id not in sources:
            memory = MemoryDocument.model_validate(output.get_json(memory_key(project_id, c.video_id)))
            memories[c.video_id] = memory
            path = ingest.local_path(memory.source["key"])
            info = probe(path)
            sources[c.video_id] = (path, info, frame_times(path) if info.video_codec in COPYABLE else ([], []))
            uris[c.video_id] = ingest.uri(memory.source["key"])
        c.source_uri = uris[c.video_id]
    formats = {
        (i.video_codec, i.width, i.height, round(i.fps or 0, 3), i.rotation, i.pixel_format)
        for _, i, _ in sources.values()
    }
    smart = len(formats) == 1 and next(iter(formats))[0] in COPYABLE
    reel.method = "smart_copy" if smart else "reencode"
    first = sources[clips[0].video_id][1]
    with tempfile.TemporaryDirectory(prefix="vidintel-reel-") as tmp:
        parts: list[Path] = []
        at = 0.0
        for i, c in enumerate(clips):
            path, info, keys = sources[c.video_id]
            c.reel_start_s = round(at, 3)
            if smart:
                parts += smart_cut(path, info, keys, c, Path(tmp), i)
            else:
                p = Path(tmp) / f"{i:04d}_all.ts"
                encode_span(path, c.start_s, c.end_s, p, first, info)
                c.reencoded_s = round(c.duration_s, 3)
                parts.append(p)
            at += c.duration_s
        listing = Path(tmp) / "parts.txt"
        listing.write_text("".join(f"file '{p.name}'\n" for p in parts))
        out = Path(tmp) / f"{name}.mp4"
        sound = Path(tmp) / "audio.m4a"
        cut_audio(clips, sources, sound)
        run_ffmpeg(
            [
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
                str(listing),
                "-i",
                str(sound),
                "-map",
                "0:v:0",
                "-map",
                "1:a:0",
                "-c",
                "copy",
                "-shortest",
                "-movflags",
                "+faststart",
                str(out),
            ],
            what=f"joining reel {name}",
        )
        reel.duration_s = probe(out).duration_s
        reel.uri = output.put_file(project_output_key(project_id, "compilations", f"{name}.mp4"), out)
    from vidintel_pipeline.outputs.timeline import reel_timeline

    reel.timeline_uri = output.put_bytes(
        project_output_key(project_id, "compilations", f"{name}.otio"),
        reel_timeline(name, query, clips, memories).encode(),
    )
    reel.manifest_uri = output.put_json(project_output_key(project_id, "compilations", f"{name}.json"), reel.manifest())
    return reel


def moments_for(
    output: Store,
    project_id: str,
    *,
    query: str = "",
    marker_type: str = "",
    label: str = "",
    mode: str = "hybrid",
    limit: int = 50,
    embedder: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Best-first moments from a search (``query``) or a marker filter (``marker_type``, optional ``label``),
    and every video's duration."""
    from vidintel_pipeline.outputs.search import search

    validate_id(project_id, "project id")
    memories = memory_keys(output.list(memories_prefix(project_id)), project_id)
    if not memories:
        raise CompileError(f"project {project_id!r} has no memories yet: ingest videos first")
    docs = {v: MemoryDocument.model_validate(output.get_json(k)) for v, k in memories.items()}
    durations = {v: d.duration_s for v, d in docs.items()}
    if bool(query) == bool(marker_type):
        raise CompileError("give either a search query or a marker type (with an optional label), not both")
    if query:
        hits = search(output, project_id, query, limit=limit, mode=mode, embedder=embedder, refresh=True)
        return [
            {"video_id": h.video_id, "start_s": h.start_s, "end_s": h.end_s, "why": f'{h.kind} "{h.text}" ({h.why})'}
            for h in hits
        ], durations
    found: list[dict[str, Any]] = []
    for v, d in sorted(docs.items()):
        for m in d.markers:
            if m.type == marker_type and (not label or label.lower() in m.label.lower()):
                found.append(
                    {
                        "video_id": v,
                        "start_s": m.start_s,
                        "end_s": m.end_s,
                        "confidence": m.confidence,
                        "why": f"{m.type} {m.label!r} by {m.plugin}",
                    }
                )
    found.sort(key=lambda f: -f["confidence"])
    return found[:limit], durations


def compile_reel(
    ingest: Store,
    output: Store,
    project_id: str,
    *,
    query: str = "",
    marker_type: str = "",
    label: str = "",
    max_seconds: float = 60.0,
    mode: str = "hybrid",
    pad_s: float = 0.5,
    embedder: Any = None,
) -> Reel:
    """Search (or filter markers), choose clips within ``max_seconds``, and cut the reel."""
    moments, durations = moments_for(
        output, project_id, query=query, marker_type=marker_type, label=label, mode=mode, embedder=embedder
    )
    clips = choose_clips(moments, durations, max_seconds=max_seconds, pad_s=pad_s)
    what = query or f"{marker_type}{':' + label if label else ''}"
    name = reel_name(what, {"max_seconds": max_seconds, "mode": mode, "pad_s": pad_s, "filter": bool(marker_type)})
    return build_reel(ingest, output, project_id, clips, query=what, name=name)
