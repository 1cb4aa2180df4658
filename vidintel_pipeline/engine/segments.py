"""Decode a long video as time segments in parallel processes, each feeding its own copy of every frame plugin.

Why: H.264 decodes poorly in frame threads on few cores. On a 2-core machine, one 720p30 H.264 stream took
25 CPU-seconds in three frame threads (1.6 cores busy at best), and 18.8 in one thread. Two processes
that each decode half the video in one thread use both cores fully. They finished in 9.7 s, against
17.3 s for ``ffmpeg -f null`` of the whole video. The detectors' own work splits the same way.

How segments join up again. Segment *i* owns the core span ``[a_i, a_{i+1})``. It decodes from ``margin``
seconds before its core to ``margin`` seconds after it, so that every moment in its core is judged with
the same context a single pass gives: the shot detector's windows, the longest transition, a freeze's
minimum length. ``margin`` is the largest :attr:`FramePlugin.segment_context_s` of the selected plugins.
Each segment keeps the markers that touch its core. A marker that runs across a boundary (a long
black stretch, a face on screen) is seen, clipped, by both neighbours. Their two pieces overlap, and the
usual :func:`~vidintel_pipeline.engine.runner.merge_markers` joins them into one. Keyframe candidates are
kept by the segment whose core holds them.

Segments are used only when every selected frame plugin declares a ``segment_context_s``, the video is
long enough for the margins to be cheap (two segments of ``VIDINTEL_MIN_SEGMENT_S``, default 120 s), and
there are at least two CPUs. Otherwise the video is decoded in one pass. ``VIDINTEL_DECODE_WORKERS`` sets
the number of processes (default: the CPUs this process may use; 1 turns segments off).
"""

from __future__ import annotations

import concurrent.futures
import gc
import math
import os
import pickle
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from vidintel_pipeline.engine.keyframes import Candidate, KeyframeSelector
from vidintel_pipeline.media.decode import DecodeStats, run_frame_pipeline
from vidintel_pipeline.media.ffmpeg import MediaError
from vidintel_pipeline.plugin_api.contracts import AnalysisConfig, ChunkInfo, PluginError, TemporalMarker
from vidintel_pipeline.plugin_api.frame_plugin import FramePlugin
from vidintel_pipeline.runtime.cpus import usable_cpus

MIN_SEGMENT_S = 120.0  # shorter segments would spend too much of their decode on margins
TARGET_SEGMENT_S = 600.0  # long videos get more segments than workers, so that workers finish together


class SegmentProcessDied(MediaError):
    """A segment's process ended without an answer (killed, out of memory): trying again may succeed."""

    retryable = True


@dataclass(frozen=True)
class Segment:
    core_start: float
    core_end: float
    decode_start: float
    decode_end: float

    def owns(self, m: TemporalMarker) -> bool:
        if m.start_s == m.end_s:
            return self.core_start <= m.start_s < self.core_end
        return m.start_s < self.core_end and m.end_s >= self.core_start


@dataclass
class SegmentOutput:
    markers: dict[str, list[TemporalMarker]] = field(default_factory=dict)  # by plugin name
    errors: dict[str, str] = field(default_factory=dict)  # plugin name -> error text
    candidates: list[Candidate] = field(default_factory=list)
    frames: int = 0
    decode: DecodeStats = field(default_factory=DecodeStats)  # margins decoded twice count twice: an upper bound


def decode_workers() -> int:
    """Processes for segment decoding: ``VIDINTEL_DECODE_WORKERS``, else the CPUs this process may use."""
    env = os.environ.get("VIDINTEL_DECODE_WORKERS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise PluginError(f"VIDINTEL_DECODE_WORKERS must be a whole number, not {env!r}") from None
    return usable_cpus()


def min_segment_s() -> float:
    """The shortest core span worth its own process: ``VIDINTEL_MIN_SEGMENT_S``, default 120 s."""
    env = os.environ.get("VIDINTEL_MIN_SEGMENT_S", "").strip()
    try:
        value = float(env) if env else MIN_SEGMENT_S
    except ValueError:
        raise PluginError(f"VIDINTEL_MIN_SEGMENT_S must be a number of seconds, not {env!r}") from None
    if not value > 0:
        raise PluginError(f"VIDINTEL_MIN_SEGMENT_S must be positive, not {env!r}")
    return value


def margin_for(plugins: list[FramePlugin]) -> Optional[float]:
    """The decode margin the plugins need, or None when one of them must see the whole video at once."""
    contexts = [p.segment_context_s for p in plugins]
    known = [c for c in contexts if c is not None]
    if len(known) < len(contexts):
        return None
    return max([0.0, *known]) + 0.5  # half a second more: a frame's time and a marker's edge are not exact


def plan_segments(duration_s: float, workers: int, margin_s: float, shortest_s: float = MIN_SEGMENT_S) -> list[Segment]:
    """Equal core spans covering [0, duration], none shorter than ``shortest_s``; one when splitting would not pay."""
    if workers < 2 or duration_s < 2 * shortest_s:
        n = 1
    else:
        n = min(int(duration_s // shortest_s), max(workers, math.ceil(duration_s / TARGET_SEGMENT_S)))
    bounds = [duration_s * i / n for i in range(n + 1)]
    return [
        Segment(
            a,
            b if i < n - 1 else math.inf,
            max(0.0, a - margin_s) if i else 0.0,
            b + margin_s if i < n - 1 else math.inf,
        )
        for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))
    ]


def analyze_segments(
    source: ChunkInfo,
    plugins: list[FramePlugin],
    config: AnalysisConfig,
    segments: list[Segment],
    *,
    keyframes: Optional[KeyframeSelector],
    workers: int,
    on_progress: Optional[Callable[[float], None]] = None,
) -> SegmentOutput:
    """Run ``plugins`` (and the keyframe selector) over every segment, ``workers`` processes at a time; join the
    results.

    Each segment runs in a fresh ``python -c`` process rather than under :mod:`multiprocessing`: spawn would
    re-import the caller's main module (a user's script without a ``__main__`` guard would run again).
    """
    recipes = [_recipe(p) for p in plugins]
    selector = (keyframes.bucket_s, keyframes.period_s, keyframes.jpeg_quality) if keyframes is not None else None
    threads = max(1, usable_cpus() // workers)  # decoder threads per process: more only when CPUs outnumber workers
    done_s = [0.0] * len(segments)
    lock = threading.Lock()
    total = sum(min(s.core_end, source.duration_s) - s.core_start for s in segments) or 1.0
    running: set[subprocess.Popen] = set()
    stopping = threading.Event()

    def run(i: int, seg: Segment) -> SegmentOutput:
        if stopping.is_set():
            raise MediaError("stopped: another segment failed")
        with tempfile.TemporaryDirectory(prefix="vidintel-segment-") as tmp:
            job, answer = os.path.join(tmp, "job.pickle"), os.path.join(tmp, "out.pickle")
            with open(job, "wb") as f:
                pickle.dump((source, seg, recipes, config, selector, threads), f)
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
            with open(os.path.join(tmp, "stderr"), "w+") as errors:
                proc = subprocess.Popen(
                    [sys.executable, "-c", "from vidintel_pipeline.engine.segments import _main; _main()", job, answer],
                    stdout=subprocess.PIPE,
                    stderr=errors,
                    text=True,
                    env=env,
                )
                with lock:
                    running.add(proc)
                try:
                    assert proc.stdout is not None  # started with stdout=PIPE
                    for line in proc.stdout:  # "progress SECONDS" lines as the segment's core is covered
                        if line.startswith("progress "):
                            done_s[i] = float(line.split()[1])
                    code = proc.wait()
                finally:
                    with lock:
                        running.discard(proc)
                errors.seek(0)
                err = errors.read()
            if code != 0 or not os.path.exists(answer):
                tail = " ".join(err.strip().splitlines()[-3:]) or "no message"
                why = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
                raise SegmentProcessDied(
                    f"decoding segment {seg.core_start:.0f}-{min(seg.core_end, source.duration_s):.0f} s "
                    f"failed ({why}): {tail}"
                )
            with open(answer, "rb") as f:
                result = pickle.load(f)
        if isinstance(result, BaseException):
            raise result
        return result

    out = SegmentOutput(markers={p.name: [] for p in plugins})
    pool = concurrent.futures.ThreadPoolExecutor(min(workers, len(segments)), thread_name_prefix="vidintel-segment")
    try:
        futures = {pool.submit(run, i, seg): seg for i, seg in enumerate(segments)}
        pending = set(futures)
        while pending:
            done, pending = concurrent.futures.wait(pending, timeout=1.0)
            if on_progress is not None:  # reported from this thread only, like the single-pass decode
                on_progress(source.start_s + min(sum(done_s), total))
            for fut in done:
                part: SegmentOutput = fut.result()
                seg = futures[fut]
                for name, markers in part.markers.items():
                    out.markers[name].extend(m for m in markers if seg.owns(m))
                for name, error in part.errors.items():
                    out.errors.setdefault(name, error)
                out.candidates.extend(c for c in part.candidates if seg.core_start <= c.time_s < seg.core_end)
                out.frames += part.frames
                out.decode.add(part.decode)
    except BaseException:
        stopping.set()
        with lock:
            for proc in running:
                proc.kill()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    out.candidates.sort(key=lambda c: c.time_s)
    return out


# in the worker processes ------------------------------------------------------------------------------
def _recipe(p: FramePlugin) -> tuple[str, Optional[str], bytes]:
    """How a worker rebuilds plugin ``p``: its module (and file, for plugins loaded from a folder), pickled."""
    module = sys.modules.get(type(p).__module__)
    return type(p).__module__, getattr(module, "__file__", None), pickle.dumps(p)


def _main() -> None:
    """A segment worker: ``python -c '...; _main()' JOB ANSWER`` reads its job from JOB, pickles the answer
    (a :class:`SegmentOutput`, or the exception that stopped it) to ANSWER."""
    job, answer = sys.argv[1], sys.argv[2]
    with open(job, "rb") as f:
        args = pickle.load(f)
    try:
        result: Any = _run_segment(*args)
    except MediaError as exc:
        result = exc
    tmp = answer + ".partial"
    with open(tmp, "wb") as f:
        pickle.dump(result, f)
    os.replace(tmp, answer)
    gc.freeze()  # the parent waits for this process to end: skip the interpreter's last collection


def _rebuild(recipe: tuple[str, Optional[str], bytes]) -> FramePlugin:
    modname, file, blob = recipe
    if modname not in sys.modules:
        try:
            __import__(modname)
        except ImportError:
            if file is None:
                raise
            from pathlib import Path

            from vidintel_pipeline.plugin_api.registry import _import_file

            _import_file(modname, Path(file))
    return pickle.loads(blob)


class Guarded:
    """A plugin fed frames until it raises; then it is left out, and its error is kept."""

    def __init__(self, plugin: FramePlugin):
        self.plugin = plugin
        self.error: Optional[BaseException] = None

    def process(self, frame) -> None:
        if self.error is None:
            try:
                self.plugin.process(frame)
            except Exception as exc:
                self.error = exc


def _run_segment(
    source: ChunkInfo, seg: Segment, recipes: list, config: AnalysisConfig, selector: Optional[tuple], threads: int
) -> SegmentOutput:
    # the plugins see the decoded span as their chunk (its path is still the whole source)
    end = min(seg.decode_end, source.duration_s)
    chunk = source.model_copy(update={"start_s": source.start_s + seg.decode_start, "end_s": source.start_s + end})
    out = SegmentOutput()
    guarded = []
    for recipe in recipes:
        plugin = _rebuild(recipe)
        try:
            plugin.begin(chunk, config)
            guarded.append(Guarded(plugin))
        except Exception as exc:
            out.errors[plugin.name] = _describe(exc)
    kf = (
        KeyframeSelector(bucket_s=selector[0], samples_per_s=1.0 / selector[1], jpeg_quality=selector[2])
        if selector
        else None
    )

    def progress(t: float) -> None:
        covered = max(0.0, min(t - source.start_s, seg.core_end, source.duration_s) - seg.core_start)
        print(f"progress {covered:.3f}", flush=True)

    out.frames = run_frame_pipeline(
        source.path,
        [*guarded, *([kf] if kf else [])],
        time_offset=source.start_s,
        read_ahead=0,
        threads=threads,
        start_s=seg.decode_start or None,
        end_s=None if math.isinf(seg.decode_end) else seg.decode_end,
        on_progress=progress,
        stats=out.decode,
    )
    progress(math.inf)
    for g in guarded:
        name = g.plugin.name
        if g.error is not None:
            out.errors[name] = _describe(g.error)
            continue
        try:
            out.markers[name] = list(g.plugin.end())
        except Exception as exc:
            out.errors[name] = _describe(exc)
    if kf is not None:
        out.candidates = kf.flush()
    return out


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
