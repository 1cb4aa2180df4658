"""Probe a media file in-process with PyAV (the imageio-ffmpeg binary ships no ffprobe)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from .ffmpeg import MediaError


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
    frame_count: Optional[int] = None
    video_codec: Optional[str] = None
    pixel_format: Optional[str] = None
    rotation: int = 0
    audio_codec: Optional[str] = None
    sample_rate: Optional[int] = None
    channels: Optional[int] = None
    streams: list[dict[str, Any]] = field(default_factory=list)

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
        for s in (vs, aus):
            if s is not None and s.duration is not None and s.time_base is not None:
                duration = max(duration, float(s.duration * s.time_base))
        streams = [
            {"index": s.index, "type": s.type, "codec": s.codec_context.name if s.codec_context else None}
            for s in container.streams
        ]
        result = VideoProbe(
            path=path,
            size_bytes=size,
            duration_s=round(duration, 6),
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
            result.frame_count = vs.frames or None
            result.video_codec = cc.name
            result.pixel_format = cc.format.name if cc.format else None
            if not result.width or not result.height:
                raise MediaError(f"{name}: video stream has no frame size (corrupt or truncated?)")
            result.rotation = _first_frame_rotation(container, vs, name)
        if aus is not None:
            result.audio_codec = aus.codec_context.name
            result.sample_rate = aus.codec_context.sample_rate
            result.channels = aus.codec_context.channels
        if result.duration_s <= 0:
            raise MediaError(f"{name}: duration is unknown or zero (truncated file?)")
        return result


def _first_frame_rotation(container: Any, stream: Any, name: str) -> int:
    """Decode the first frame: proves the stream is decodable and yields its display rotation."""
    import av

    try:
        for frame in container.decode(stream):
            return int(getattr(frame, "rotation", 0) or 0) % 360
    except (av.FFmpegError, ValueError) as exc:
        raise MediaError(f"{name}: video stream cannot be decoded ({exc})") from exc
    raise MediaError(f"{name}: video stream holds no decodable frame (corrupt or truncated?)")
