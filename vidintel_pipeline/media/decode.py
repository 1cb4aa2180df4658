"""One decode of a video, shared by every frame consumer: frames in presentation order from a time span,
decode damage counted per packet (:class:`DecodeStats`), a read-ahead thread, and JPEG samples for keyframes."""

from __future__ import annotations

import functools
import os
import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterable, Iterator, Optional

import cv2
import numpy as np

from vidintel_pipeline.media.ffmpeg import MediaError
from vidintel_pipeline.media.frames import ANALYSIS_WIDTH, Frame, FrameConsumer, analysis_size


@dataclass
class DecodeStats:
    """What one decode met: packets the decoder refused, frames it flagged corrupt, the last frame's time."""

    errors: int = 0
    corrupt: int = 0
    packets: int = 0
    first_error_s: Optional[float] = None
    last_frame_s: Optional[float] = None

    def add(self, other: "DecodeStats") -> None:
        self.errors += other.errors
        self.corrupt += other.corrupt
        self.packets += other.packets
        if other.first_error_s is not None:
            self.first_error_s = (
                other.first_error_s if self.first_error_s is None else min(self.first_error_s, other.first_error_s)
            )
        if other.last_frame_s is not None:
            self.last_frame_s = (
                other.last_frame_s if self.last_frame_s is None else max(self.last_frame_s, other.last_frame_s)
            )

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


# A decode that loses more than this share of its packets is a broken file (a permanent error), not a
# damaged one: one bad packet in a long file (a truncated tail, a dropped network chunk) is counted, reported
# and skipped, so the rest of the file is still analysed.
MAX_BAD_PACKET_SHARE = 0.1

if TYPE_CHECKING:
    import av


def video_origin(path: str) -> float:
    """Presentation time of the first decodable frame: time 0 of every output (see :mod:`.probe`)."""
    st = os.stat(path)
    return _origin(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _origin(path: str, size: int, mtime_ns: int) -> float:  # keyed on the file's identity: a replaced file is new
    import av

    try:
        with av.open(path) as c:
            stream = c.streams.video[0]
            for packet in c.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    continue  # a damaged head: the first frame that decodes is the origin
                for f in frames:
                    if f.time is not None:
                        return float(f.time)
    except (av.FFmpegError, IndexError, OSError):
        pass
    return 0.0


def iter_frames(
    path: str | os.PathLike[str],
    *,
    time_offset: float = 0.0,
    target_width: int = ANALYSIS_WIDTH,
    threads: int = 0,
    start_s: Optional[float] = None,
    end_s: Optional[float] = None,
    stats: Optional[DecodeStats] = None,
) -> Iterator[Frame]:
    """Decode ``path`` once, yielding frames at analysis resolution on the source timeline (frame 0 at 0.0).

    ``start_s``/``end_s`` (on that timeline) decode only that span: a seek to the keyframe at or before
    ``start_s``, then frames from ``start_s`` up to, not including, ``end_s``. Frames an edit list places before
    the first shown frame are skipped. A packet the decoder refuses is counted in ``stats`` and skipped; more
    than :data:`MAX_BAD_PACKET_SHARE` of them is a :class:`MediaError`.
    """
    import av  # the decoder, only where frames are decoded: Frame and the detectors work without it

    name = os.path.basename(os.fspath(path))
    stats = stats if stats is not None else DecodeStats()
    try:
        container = av.open(os.fspath(path))
    except av.FFmpegError as exc:
        raise MediaError(f"{name}: cannot open for decoding ({exc})") from exc
    with container:
        if not container.streams.video:
            return
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if threads:
            stream.thread_count = threads
        stream.codec_context.options = {"skip_loop_filter": "all"}
        start = video_origin(os.fspath(path))
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        size = None
        index = 0
        if start_s:
            if stream.time_base is None:
                raise MediaError(f"{name}: the video stream has no time base to seek by")
            container.seek(int((start_s + start) / stream.time_base), stream=stream, backward=True)
            index = int(round(start_s * rate))  # frame numbers stay those of the whole file at a constant rate

        def frames_of(packet: "av.Packet") -> list:
            # only packets of the span asked for count: a seek's pre-roll and what lies past end_s are not ours
            pt = float(packet.pts * packet.time_base) - start if packet.pts is not None else None
            ours = pt is None or ((start_s is None or pt >= start_s - 1e-6) and (end_s is None or pt < end_s))
            stats.packets += ours
            try:
                return packet.decode()
            except av.FFmpegError:
                if not ours:
                    return []
                stats.errors += 1
                if stats.first_error_s is None:
                    stats.first_error_s = round(pt, 3) if pt is not None else (stats.last_frame_s or 0.0)
                if stats.errors > 5 and stats.errors > MAX_BAD_PACKET_SHARE * stats.packets:
                    raise MediaError(
                        f"{name}: decoding failed at frame {index} ({stats.errors} of {stats.packets} "
                        "packets undecodable: the file is corrupt)"
                    ) from None
                return []

        def decoded() -> Iterator:
            for packet in container.demux(stream):
                yield from frames_of(packet)  # the last, empty packet flushes the decoder

        try:
            for f in decoded():
                t = float(f.time) - start if f.time is not None else index / rate
                if t < -1e-6:
                    continue  # before the first shown frame: an edit list's lead-in
                if start_s is not None and t < start_s - 1e-6:
                    continue
                if end_s is not None and t >= end_s - 1e-6:
                    break
                if size is None:
                    rotation = int(getattr(f, "rotation", 0) or 0) % 360
                    size = analysis_size(f.width, f.height, rotation, target_width)
                if f.is_corrupt:
                    stats.corrupt += 1
                if f.format.name not in ("yuv420p", "yuvj420p"):
                    f = f.reformat(format="yuv420p")
                planes = (_plane(f, 0), _plane(f, 1), _plane(f, 2))
                stats.last_frame_s = round(t, 6)
                frame = Frame(index, round(t + time_offset, 6), planes, size, rotation, keep=f)
                frame.intra = f.pict_type == 1  # AV_PICTURE_TYPE_I
                yield frame
                index += 1
        except av.FFmpegError as exc:
            raise MediaError(f"{name}: decoding failed at frame {index} ({exc})") from exc


def _plane(frame: "av.VideoFrame", i: int) -> np.ndarray:
    p = frame.planes[i]
    h = p.height
    w = p.width
    return np.frombuffer(memoryview(p), np.uint8).reshape(h, p.line_size)[:, :w]


def run_frame_pipeline(
    path: str | os.PathLike[str],
    consumers: Iterable[FrameConsumer],
    *,
    time_offset: float = 0.0,
    on_progress: Optional[Callable[[float], None]] = None,
    progress_every_s: float = 2.0,
    read_ahead: int = 8,
    start_s: Optional[float] = None,
    end_s: Optional[float] = None,
    threads: int = 0,
    stats: Optional[DecodeStats] = None,
) -> int:
    """Decode once and feed every frame to every consumer. Returns the number of frames decoded.

    Frames are decoded (with their thumbnail and change) up to ``read_ahead`` frames ahead, on a thread of
    their own; consumers see them in order, on the calling thread. ``read_ahead=0`` decodes on the calling
    thread (a process that already keeps every core busy). ``start_s``/``end_s``: see :func:`iter_frames`.
    """
    consumers = list(consumers)
    n = 0
    next_report = (start_s or 0.0) + time_offset + progress_every_s
    span: dict[str, Any] = dict(time_offset=time_offset, start_s=start_s, end_s=end_s, threads=threads, stats=stats)
    frames = decoded_ahead(path, depth=read_ahead, **span) if read_ahead > 0 else _followed(iter_frames(path, **span))
    for frame in frames:
        for c in consumers:
            c.process(frame)
        n += 1
        if on_progress is not None and frame.time_s >= next_report:
            on_progress(frame.time_s)
            next_report = frame.time_s + progress_every_s
    return n


def _followed(frames: Iterator[Frame]) -> Generator[Frame, None, None]:
    previous = None
    for frame in frames:
        yield frame.follow(previous)
        previous = frame


def decoded_ahead(path: str | os.PathLike[str], *, depth: int = 8, **span: Any) -> Iterator[Frame]:
    """:func:`iter_frames` (``span``: its keyword arguments) on a decoder thread, ``depth`` frames ahead,
    each frame :meth:`~Frame.follow`-ed.

    Errors in decoding re-raise here; leaving the loop early stops the decoder thread and closes the file.
    """
    frames: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                frames.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def decode() -> None:
        source = _followed(iter_frames(path, **span))
        try:
            for frame in source:
                if not put(frame):
                    return
            put(done)
        except BaseException as exc:  # handed to the consuming thread, which raises it
            put(exc)
        finally:
            source.close()

    worker = threading.Thread(target=decode, name="vidintel-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = frames.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def sample_jpegs(
    path: str | os.PathLike[str],
    times: list[float],
    *,
    time_offset: float = 0.0,
    width: int = 512,
    quality: int = 85,
) -> list[tuple[float, bytes]]:
    """Upright JPEGs of the frames nearest to ``times`` (source timeline), from one decode of ``path``.

    For plugins that look at a few frames per chunk (vision-language models): each wanted time takes the
    first frame at or after it, so n samples cost one decode, not n seeks.
    """
    wanted = sorted(times)
    out: list[tuple[float, bytes]] = []
    i = 0
    for frame in iter_frames(path, time_offset=time_offset, target_width=width):
        while i < len(wanted) and frame.time_s + 1e-6 >= wanted[i]:
            ok, buf = cv2.imencode(".jpg", frame.bgr(), [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and not (out and out[-1][0] == frame.time_s):
                out.append((frame.time_s, buf.tobytes()))
            i += 1
        if i >= len(wanted):
            break
    return out
