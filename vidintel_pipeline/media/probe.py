"""Probe a media file in-process with PyAV (the imageio-ffmpeg binary ships no ffprobe).

The timeline every output uses starts at the **first decoded video frame** (time 0, as PySceneDetect counts),
not at the container's presentation time: an MP4 whose edit list starts the video 0.5 s after the audio has
frame 0 at 0.0 and its audio shifted by the same 0.5 s (``audio_offset_s``, applied when the audio is extracted).
``duration_s`` is the video stream's *readable* duration on that timeline: the end of the last video packet
actually present in the file, found by demuxing (no decoding) its head and its last seconds, or the whole
file when the tail is missing. A file whose index promises more than its data holds (an interrupted
download) is ``truncated``, with both durations kept.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any, Optional

from vidintel_pipeline.media.ffmpeg import MediaError


@dataclass
class VideoProbe:
    path: str
    size_bytes: int
    duration_s: float
    format_name: str
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0
    fps_rational: Optional[str] = None  # the exact rate, e.g. "30000/1001": editors' timecode needs it, not 29.97
    timecode: Optional[str] = None  # the start timecode (the ``timecode`` tag or a tmcd track): "01:00:00;00"
    frame_count: Optional[int] = None
    video_codec: Optional[str] = None
    pixel_format: Optional[str] = None
    rotation: int = 0
    audio_codec: Optional[str] = None
    sample_rate: Optional[int] = None
    channels: Optional[int] = None
    streams: list[dict[str, Any]] = field(default_factory=list)
    declared_duration_s: float = 0.0  # what the container's header promises (longest stream)
    video_start_s: float = 0.0  # first decoded frame's presentation time: the timeline's origin
    container_start_s: float = 0.0  # the file's own start, where ffmpeg's -ss counts from
    audio_offset_s: float = 0.0  # where the first audio sample lies on that timeline (<0: before frame 0)
    readable_video_s: Optional[float] = None
    readable_audio_s: Optional[float] = None
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown to a viewer, rotation metadata honoured."""
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)


def probe(path: str | os.PathLike[str]) -> VideoProbe:
    """Read container and stream facts; raise :class:`MediaError` naming the file if it is not media."""
    import av  # loaded on first use, so importing vidintel_pipeline.media needs no decoder

    path = os.fspath(path)
    name = os.path.basename(path)
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise MediaError(f"{name}: cannot read file ({exc.strerror})") from exc
    if size == 0:
        raise MediaError(f"{name}: file is empty (0 bytes)")
    try:
        container = av.open(path)
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(f"{name}: not a readable video container ({exc})") from exc
    with container:
        vs = container.streams.video[0] if container.streams.video else None
        aus = container.streams.audio[0] if container.streams.audio else None
        if vs is None and aus is None:
            raise MediaError(f"{name}: no video or audio stream")
        duration = 0.0
        if container.duration is not None:
            duration = container.duration / 1_000_000
        declared: dict[str, float] = {}
        for s in (vs, aus):
            if s is not None and s.duration is not None and s.time_base is not None:
                declared[s.type] = float(s.duration * s.time_base)
                duration = max(duration, declared[s.type])
            elif s is not None and duration > 0:
                declared[s.type] = duration  # Matroska/WebM give the container's duration only
        streams = [
            {"index": s.index, "type": s.type, "codec": s.codec_context.name if s.codec_context else None}
            for s in container.streams
        ]
        result = VideoProbe(
            path=path,
            size_bytes=size,
            duration_s=round(duration, 6),
            declared_duration_s=round(duration, 6),
            container_start_s=round(container.start_time / 1_000_000, 6) if container.start_time is not None else 0.0,
            format_name=container.format.name,
            has_video=vs is not None,
            has_audio=aus is not None,
            streams=streams,
        )
        if vs is not None:
            cc = vs.codec_context
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            result.width, result.height = cc.width, cc.height
            result.fps = float(rate) if rate else 0.0
            exact = exact_rate(rate)
            result.fps_rational = f"{exact.numerator}/{exact.denominator}" if exact else None
            result.timecode = _start_timecode(container)
            result.frame_count = vs.frames or None
            result.video_codec = cc.name
            result.pixel_format = cc.format.name if cc.format else None
            if not result.width or not result.height:
                raise MediaError(f"{name}: video stream has no frame size (corrupt or truncated?)")
            result.rotation, result.video_start_s = _first_frame(container, vs, name)
        if aus is not None:
            result.audio_codec = aus.codec_context.name
            result.sample_rate = aus.codec_context.sample_rate
            result.channels = aus.codec_context.channels
    _measure_readable(path, result, declared)
    if result.duration_s <= 0:
        raise MediaError(f"{name}: duration is unknown or zero (truncated file?)")
    return result


STANDARD_RATES = [
    Fraction(n, d)
    for n, d in (
        (24000, 1001),
        (24, 1),
        (25, 1),
        (30000, 1001),
        (30, 1),
        (48, 1),
        (50, 1),
        (60000, 1001),
        (60, 1),
        (120, 1),
    )
]
_TIMECODE = re.compile(r"^\d{2}:\d{2}:\d{2}[:;.]\d{2}$")


def exact_rate(rate: Any) -> Optional[Fraction]:
    """The stream's rate as an exact fraction: a standard rate when within 0.05 % of one (an average over a
    trimmed file reads 2997/100 for 30000/1001), else the fraction itself."""
    if not rate:
        return None
    r = Fraction(rate.numerator, rate.denominator)
    near = min(STANDARD_RATES, key=lambda s: abs(s - r))
    return near if abs(near - r) / near < Fraction(5, 10000) else r.limit_denominator(1001)


def _start_timecode(container: Any) -> Optional[str]:
    """The ``timecode`` tag of the video stream, a timecode (tmcd) data stream or the container, if any."""
    for meta in [s.metadata for s in container.streams if s.type in ("video", "data")] + [container.metadata]:
        tc = (meta or {}).get("timecode")
        if tc and _TIMECODE.match(tc):
            return tc
    return None


# A stream is truncated when its data ends this much before its header says (and by more than 2 % of it):
# container durations are rounded and the last frame's duration is sometimes missing, by a frame at most.
TRUNCATION_SLACK_S = 0.5


def _scan(
    path: str,
    first: dict[str, float],
    last: dict[str, float],
    *,
    seek_s: Optional[float] = None,
    head_only: bool = False,
) -> None:
    """Demux (no decoding) the first video and audio streams, from ``seek_s`` or the start, noting each
    stream's first and last packet times; ``head_only`` stops once both streams were seen."""
    import av

    try:
        with av.open(path) as c:
            wanted = c.streams.video[:1] + c.streams.audio[:1]
            if seek_s is not None:
                c.seek(int(seek_s * 1_000_000), backward=True)
            for pkt in c.demux(wanted):
                if pkt.pts is None or pkt.size == 0:
                    continue
                kind = pkt.stream.type
                t = float(pkt.pts * pkt.time_base)
                if seek_s is None and not pkt.is_discard:
                    first[kind] = min(first.get(kind, t), t)
                last[kind] = max(last.get(kind, t), t + float((pkt.duration or 0) * pkt.time_base))
                if head_only and len(first) == len(wanted):
                    return
    except (av.FFmpegError, OSError):
        pass  # the packets read so far are what is readable: a damaged tail is what we measure here


def _measure_readable(path: str, result: VideoProbe, declared: dict[str, float]) -> None:
    """Where each stream's data really ends, and the audio's offset. The head and the last seconds are
    demuxed first (a whole file is read only when its tail is missing: about 20 us a packet, so 5 s for an
    hour of video and audio)."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    _scan(path, first, last, head_only=True)
    end = max(declared.values(), default=0.0)
    whole = False
    if end > 6 and first:
        tail: dict[str, float] = {}
        _scan(path, {}, tail, seek_s=max(0.0, min(first.values()) + end - 3.0))
        whole = set(tail) == set(first) and all(
            tail[k] - max(first[k], 0.0) >= declared.get(k, 0.0) - TRUNCATION_SLACK_S for k in first
        )
        if whole:
            last = tail
    if not whole:
        last = {}
        _scan(path, first, last)
    origin = result.video_start_s
    if "video" in last:  # spans are each stream's own, like the header's durations they are checked against
        result.readable_video_s = round(max(0.0, last["video"] - origin), 6)
    if "audio" in last:
        a0 = _first_audio_time(path, first.get("audio", 0.0))
        result.readable_audio_s = round(max(0.0, last["audio"] - a0), 6)
        result.audio_offset_s = round(a0 - origin, 6)
    for kind, readable in (("video", result.readable_video_s), ("audio", result.readable_audio_s)):
        want = declared.get(kind)
        if readable is not None and want and want - readable > max(TRUNCATION_SLACK_S, 0.02 * want):
            result.truncated = True
    if result.has_video and result.readable_video_s:
        # the video stream's own duration on our timeline, never past its data: what every marker lives within
        result.duration_s = result.readable_video_s


def _first_audio_time(path: str, fallback: float) -> float:
    """The first *decoded* audio sample's time: an AAC packet's pts counts encoder priming (1024 samples,
    23 ms at 44.1 kHz) that the decoder drops."""
    import av

    try:
        with av.open(path) as c:
            for f in c.decode(c.streams.audio[0]):
                if f.time is not None:
                    return float(f.time)
    except (av.FFmpegError, IndexError):
        pass
    return max(fallback, 0.0)


def _first_frame(container: Any, stream: Any, name: str) -> tuple[int, float]:
    """Decode the first frame: proves the stream is decodable; yields its display rotation and its time."""
    import av

    try:
        for frame in container.decode(stream):
            t = float(frame.time) if frame.time is not None else 0.0
            return int(getattr(frame, "rotation", 0) or 0) % 360, t
    except (av.FFmpegError, ValueError) as exc:
        raise MediaError(f"{name}: video stream cannot be decoded ({exc})") from exc
    raise MediaError(f"{name}: video stream holds no decodable frame (corrupt or truncated?)")
