"""The reliability and security matrix: bad inputs, faults, load and tenancy, each case run for real.

Every case drives the real pipeline (ffmpeg-made media, the Dagster ingest job on a SQLite instance,
real subprocesses, signals and rlimits, moto's S3 server) in a private vidintel home that already
holds one good video. A case passes when the pipeline did the right thing (a correct result, or a clear
error naming the file and the reason) *and* nothing else was lost: every object under ``projects/`` of
the other partitions is byte-for-byte as before, and no partial or temporary file is left behind.

    make reliability                                   # every case, fast and slow, then the table
    pytest tests/reliability                           # the fast cases (what `make test` runs)
    pytest tests/reliability -m slow -k hevc           # slow cases whose name contains "hevc"
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
VIDINTEL = str(Path(sys.executable).with_name("vidintel"))


@dataclass
class Outcome:
    case: str
    group: str
    tried: str
    happened: str = ""
    lost: str = "nothing"
    ok: bool = False
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Case:
    name: str
    group: str
    tried: str
    fn: Callable[["Bench", Outcome], None]
    slow: bool = False


CASES: dict[str, Case] = {}


def case(group: str, tried: str, *, slow: bool = False):
    def register(fn):
        CASES[fn.__name__] = Case(fn.__name__, group, tried, fn, slow)
        return fn

    return register


# --------------------------------------------------------------------------------------------------
# the bench: a private home with one good video, media makers, and the checks every case shares
# --------------------------------------------------------------------------------------------------


class Bench:
    """A private vidintel home (storage + Dagster instance) holding one good, fully ingested video."""

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.media_dir = root / "media"
        self.media_dir.mkdir(parents=True, exist_ok=True)
        os.environ["VIDINTEL_HOME"] = str(self.home)
        os.environ["DAGSTER_HOME"] = str(self.home / "dagster")
        from vidintel_pipeline.runtime import in_process

        in_process.ingest(str(self.clip("baseline.mp4", seconds=3)), "keep", "baseline", quiet=True)

    # media -----------------------------------------------------------------------------------------
    def ffmpeg(self, *args: str) -> None:
        from vidintel_pipeline.media.ffmpeg import ffmpeg_exe

        subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=900)

    def clip(
        self,
        name: str,
        *,
        seconds: float = 2.0,
        size: str = "320x180",
        fps: int = 25,
        audio: bool = True,
        vcodec: tuple[str, ...] = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
        extra: tuple[str, ...] = (),
    ) -> Path:
        """testsrc2 with a hard cut to a colour field half-way (and a tone): known content, every codec."""
        out = self.media_dir / name
        half = seconds / 2
        v = (
            f"testsrc2=s={size}:r={fps}:d={half}[a];color=c=orange:s={size}:r={fps}:d={seconds - half}[b];"
            f"[a][b]concat=n=2:v=1:a=0[v]"
        )
        args = ["-filter_complex", v, "-map", "[v]"]
        if audio:
            args = ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}", *args, "-map", "0:a", "-c:a", "aac", "-b:a", "64k"]
        self.ffmpeg(*args, *vcodec, *extra, str(out))
        return out

    # running ---------------------------------------------------------------------------------------
    def drop_and_run(
        self, project: str, video: str, src: Path, *, name: Optional[str] = None, resources: Optional[dict] = None
    ) -> Any:
        """Put ``src`` where the sensor would find it and run the ingest job for its partition, as the sensor does."""
        from vidintel.resources import VidintelStorage
        from vidintel_pipeline.definitions import defs
        from vidintel_pipeline.runtime.instance import get_instance
        from vidintel_pipeline.storage.layout import VideoRef

        ref = VideoRef(project, video)
        store = VidintelStorage().ingest().scoped(project)
        store.put_file(ref.key("source", name or src.name), src)
        instance = get_instance()
        instance.add_dynamic_partitions("videos", [ref.partition_key])
        return defs.resolve_job_def("ingest_video").execute_in_process(
            instance=instance,
            partition_key=ref.partition_key,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}, "resources": resources or {}},
        )

    def reasons(self, result: Any) -> str:
        from vidintel_pipeline.runtime.in_process import failure_reasons

        return "; ".join(failure_reasons(result.all_events))

    def memory(self, project: str, video: str) -> Any:
        from vidintel_pipeline.plugin_api.contracts import MemoryDocument

        p = self.home / "data/output/projects" / project / "memories" / f"{video}.json"
        return MemoryDocument.model_validate_json(p.read_text()) if p.is_file() else None

    def vidintel(self, *args: str, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
        env = dict(os.environ, VIDINTEL_HOME=str(self.home), DAGSTER_HOME=str(self.home / "dagster"))
        env.update(kw.pop("env", {}))
        return subprocess.run([VIDINTEL, *args], capture_output=True, text=True, timeout=timeout, env=env, **kw)

    # what must never happen ------------------------------------------------------------------------
    def snapshot(self, project: str) -> dict[str, str]:
        """sha256 of every object under projects/ in both buckets, except ``project``'s own."""
        out = {}
        for p in sorted((self.home / "data").rglob("*")):
            rel = p.relative_to(self.home / "data").as_posix()
            if p.is_file() and "/projects/" in f"/{rel}" and f"projects/{project}/" not in rel:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        return out

    def leftovers(self) -> list[str]:
        """Temporary, partial or staging files anywhere in storage: an atomic writer leaves none."""
        bad = []
        for p in (self.home / "data").rglob("*"):
            n = p.name
            if n.endswith((".partial", ".tmp")) or n.startswith((".tmp", "tmp")) or ".staging" in p.as_posix():
                bad.append(p.relative_to(self.home).as_posix())
        return bad


def run_case(bench: Bench, c: Case) -> Outcome:
    out = Outcome(c.name, c.group, c.tried)
    project = c.name.replace("_", "-")[:40]
    before = bench.snapshot(project)
    t0 = time.perf_counter()
    try:
        c.fn(bench, out)
    except Exception as exc:  # noqa: BLE001 - a case that crashes is a failed case, with its reason in the table
        out.ok, out.happened = False, f"case crashed: {type(exc).__name__}: {exc}"
    out.seconds = round(time.perf_counter() - t0, 1)
    after = bench.snapshot(project)
    lost = [k for k in before if after.get(k) != before[k]]
    left = bench.leftovers()
    if lost or left:
        out.ok = False
        out.lost = "; ".join(
            filter(
                None,
                [
                    f"changed or gone: {', '.join(lost[:3])}" if lost else "",
                    f"left behind: {', '.join(left[:3])}" if left else "",
                ],
            )
        )
    return out


def expect_error(out: Outcome, result: Any, bench: Bench, *must: str) -> None:
    """The run failed, and its reason names the file and says why."""
    why = bench.reasons(result) if not isinstance(result, str) else result
    ok = (isinstance(result, str) or not result.success) and all(m.lower() in why.lower() for m in must)
    out.ok, out.happened = ok, f"refused: {why[:160]}" if ok else f"unexpected: {why[:200] or 'run succeeded'}"


# --------------------------------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------------------------------


@case("bad input", "zero-byte file dropped into storage")
def zero_byte(b: Bench, out: Outcome) -> None:
    f = b.media_dir / "empty.mp4"
    f.write_bytes(b"")
    expect_error(out, b.drop_and_run("zero-byte", "empty", f), b, "empty.mp4", "empty (0 bytes)")


@case("bad input", "MP4 cut off before its moov atom")
def truncated_mp4(b: Bench, out: Outcome) -> None:
    full = b.clip("full.mp4", seconds=4)
    f = b.media_dir / "cut short.mp4"
    f.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
    expect_error(out, b.drop_and_run("truncated-mp4", "cut-short", f), b, "cut short.mp4")


@case("bad input", "MP4 cut short with its index up front (an interrupted download); then with strict on")
def truncated_but_readable(b: Bench, out: Outcome) -> None:
    full = b.clip("long.mp4", seconds=8, extra=("-movflags", "+faststart"))
    f = b.media_dir / "interrupted.mp4"
    f.write_bytes(full.read_bytes()[: full.stat().st_size * 45 // 100])
    r = b.drop_and_run("truncated-but-readable", "v", f)
    m = b.memory("truncated-but-readable", "v")
    src = m.source if m else {}
    strict = b.drop_and_run(
        "truncated-but-readable", "strict", f, resources={"storage": {"config": {"strict_media": True}}}
    )
    why = b.reasons(strict)
    out.ok = bool(
        r.success
        and src.get("truncated")
        and m.duration_s < 7
        and all(x.end_s <= m.duration_s for x in m.markers)
        and not strict.success
        and "strict" in why
        and "truncated" in why
    )
    out.happened = (
        f"analysed {m.duration_s if m else '?'} s of {src.get('declared_duration_s')} s, flagged truncated; "
        f"strict: {why[:80]}"
    )


@case("bad input", "an MP4 whose edit list starts the video 0.5 s after its audio")
def edit_list_start(b: Bench, out: Outcome) -> None:
    plain = b.clip("plain.mp4", seconds=4)
    f = b.media_dir / "late-video.mp4"
    b.ffmpeg(
        "-itsoffset", "0.5", "-i", str(plain), "-i", str(plain), "-map", "0:v", "-map", "1:a", "-c", "copy", str(f)
    )
    r = b.drop_and_run("edit-list-start", "v", f)
    m = b.memory("edit-list-start", "v")
    cuts = [x.start_s for x in m.markers if x.label == "cut"] if m else []
    offset = m.source.get("audio_offset_s") if m else None
    out.ok = bool(r.success and offset is not None and abs(offset + 0.5) < 0.05 and cuts and abs(cuts[0] - 2.0) <= 0.04)
    out.happened = f"cut at {cuts} (2.0 in the file's own video), audio offset {offset} s on the frame-0 timeline"


@case("bad input", "a text file named .mp4")
def text_as_mp4(b: Bench, out: Outcome) -> None:
    f = b.media_dir / "notes.mp4"
    f.write_text("meeting notes, not a video\n" * 50)
    expect_error(out, b.drop_and_run("text-as-mp4", "notes", f), b, "notes.mp4", "not a readable video")


@case("bad input", "audio-only MP4")
def audio_only(b: Bench, out: Outcome) -> None:
    f = b.media_dir / "podcast.mp4"
    b.ffmpeg("-f", "lavfi", "-i", "sine=f=300:d=3", "-c:a", "aac", str(f))
    expect_error(out, b.drop_and_run("audio-only", "podcast", f), b, "podcast.mp4", "no video stream")


@case("bad input", "video-only MP4 (no audio track)")
def video_only(b: Bench, out: Outcome) -> None:
    f = b.clip("silent film.mp4", seconds=4, audio=False)
    r = b.drop_and_run("video-only", "silent-film", f)
    m = b.memory("video-only", "silent-film")
    cuts = [x for x in (m.markers if m else []) if x.type == "shot_boundary"]
    out.ok = r.success and m is not None and m.transcript.segments == [] and len(cuts) == 1
    out.happened = (
        f"ingested: empty transcript, {len(cuts)} cut at {cuts[0].start_s:.2f} s"
        if out.ok
        else f"unexpected: {b.reasons(r) if not r.success else m}"
    )


@case("bad input", "variable frame rate (30 fps, then 10 fps)")
def variable_frame_rate(b: Bench, out: Outcome) -> None:
    f = b.media_dir / "vfr.mp4"
    b.ffmpeg(
        "-filter_complex",
        "testsrc2=s=320x180:r=30:d=2[a];color=c=navy:s=320x180:r=10:d=2[b];[a][b]concat=n=2:v=1:a=0[v]",
        "-map",
        "[v]",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-fps_mode",
        "vfr",
        str(f),
    )
    r = b.drop_and_run("variable-frame-rate", "vfr", f)
    m = b.memory("variable-frame-rate", "vfr")
    cuts = [x.start_s for x in (m.markers if m else []) if x.type == "shot_boundary"]
    out.ok = (
        r.success and m is not None and abs(m.duration_s - 4.0) < 0.15 and len(cuts) == 1 and abs(cuts[0] - 2.0) <= 0.1
    )
    out.happened = f"ingested: {m.duration_s:.2f} s, cut at {cuts}" if m else f"unexpected: {b.reasons(r)}"


@case("bad input", "phone video stored landscape with 90-degree rotation metadata")
def rotated_phone_video(b: Bench, out: Outcome) -> None:
    raw = b.clip("raw.mp4", seconds=2, size="320x180")
    f = b.media_dir / "phone.mp4"
    b.ffmpeg("-display_rotation", "90", "-i", str(raw), "-c", "copy", str(f))
    r = b.drop_and_run("rotated-phone-video", "phone", f)
    m = b.memory("rotated-phone-video", "phone")
    import cv2

    kf = sorted((b.home / "data/ingest/projects/rotated-phone-video/videos/phone/keyframes").glob("*.jpg"))
    shapes = {cv2.imread(str(k)).shape[:2] for k in kf}
    out.ok = r.success and m is not None and bool(shapes) and all(h > w for h, w in shapes)
    out.happened = (
        f"ingested: {len(kf)} keyframes, upright (h x w {sorted(shapes)})"
        if out.ok
        else f"unexpected: {shapes} {b.reasons(r)}"
    )


@case("bad input", "10-bit HEVC")
def hevc_10bit(b: Bench, out: Outcome) -> None:
    f = b.clip(
        "hevc10.mp4",
        seconds=2,
        vcodec=(
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p10le",
            "-x265-params",
            "log-level=error",
            "-tag:v",
            "hvc1",
        ),
    )
    r = b.drop_and_run("hevc-10bit", "hevc10", f)
    m = b.memory("hevc-10bit", "hevc10")
    cuts = [x.start_s for x in (m.markers if m else []) if x.type == "shot_boundary"]
    out.ok = r.success and len(cuts) == 1 and abs(cuts[0] - 1.0) <= 0.05
    out.happened = f"ingested: cut at {cuts}" if out.ok else f"unexpected: {cuts} {b.reasons(r)}"


@case("bad input", "16x16 frames")
def tiny_frames(b: Bench, out: Outcome) -> None:
    f = b.clip("tiny.mp4", seconds=2, size="16x16")
    r = b.drop_and_run("tiny-frames", "tiny", f)
    m = b.memory("tiny-frames", "tiny")
    out.ok = r.success and m is not None
    out.happened = f"ingested: {len(m.markers)} markers" if m else f"unexpected: {b.reasons(r)}"


@case("bad input", "4K (3840x2160) frames", slow=True)
def frames_4k(b: Bench, out: Outcome) -> None:
    f = b.clip("uhd.mp4", seconds=4, size="3840x2160", fps=30)
    t0 = time.perf_counter()
    r = b.drop_and_run("frames-4k", "uhd", f)
    m = b.memory("frames-4k", "uhd")
    cuts = [x.start_s for x in (m.markers if m else []) if x.type == "shot_boundary"]
    out.ok = r.success and len(cuts) == 1 and abs(cuts[0] - 2.0) <= 0.04
    out.figures = {"wall_s": round(time.perf_counter() - t0, 1)}
    out.happened = (
        f"ingested in {out.figures['wall_s']} s: cut at {cuts}" if out.ok else f"unexpected: {cuts} {b.reasons(r)}"
    )


@case("bad input", "unicode and spaces in the file name", slow=False)
def unicode_names(b: Bench, out: Outcome) -> None:
    f = b.clip("Fête du café — été 2026.mp4", seconds=2)
    res = b.vidintel("ingest", str(f), "--project", "unicode-names", "--quiet")
    m = b.memory("unicode-names", "fete-du-cafe-ete-2026")
    src = list((b.home / "data/ingest/projects/unicode-names/videos/fete-du-cafe-ete-2026/source").glob("*"))
    out.ok = res.returncode == 0 and m is not None and [p.name for p in src] == [f.name]
    out.happened = (
        f"ingested as video id fete-du-cafe-ete-2026, source kept as {src[0].name!r}"
        if out.ok
        else f"unexpected: rc={res.returncode} {res.stderr[-300:]}"
    )


@case("bad input", "file over the size limit (VIDINTEL_MAX_SOURCE_MB=1)")
def over_size_limit(b: Bench, out: Outcome) -> None:
    f = b.clip("big.mp4", seconds=6, size="640x360", vcodec=("-c:v", "libx264", "-preset", "ultrafast", "-crf", "0"))
    assert f.stat().st_size > 2**20, f.stat().st_size
    os.environ["VIDINTEL_MAX_SOURCE_MB"] = "1"
    try:
        r = b.drop_and_run("over-size-limit", "big", f)
        cli = b.vidintel("ingest", str(f), "--project", "over-size-limit", "--video-id", "big2")
    finally:
        del os.environ["VIDINTEL_MAX_SOURCE_MB"]
    expect_error(out, r, b, "big.mp4", "over the 1 MB limit")
    out.ok = out.ok and cli.returncode == 2 and "over the 1 MB limit" in cli.stderr
    out.happened += f" | CLI: {cli.stderr.strip()[:120]}"


@case("bad input", "a 1-hour 1080p video, streamed (peak memory of the ingest process)", slow=True)
def one_hour_video(b: Bench, out: Outcome) -> None:
    f = b.media_dir / "hour.mp4"
    srcs = ["testsrc2", "rgbtestsrc"]  # a hard cut every 10 minutes
    segs = "".join(f"{srcs[i % 2]}=s=1920x1080:r=25:d=600[v{i}];" for i in range(6))
    b.ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "sine=f=200:d=3600",
        "-filter_complex",
        segs + "".join(f"[v{i}]" for i in range(6)) + "concat=n=6:v=1:a=0[v]",
        "-map",
        "[v]",
        "-map",
        "0:a",
        "-c:a",
        "aac",
        "-b:a",
        "32k",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        "35",
        "-g",
        "250",
        "-pix_fmt",
        "yuv420p",
        str(f),
    )
    # the ingest under a wrapper that reports the largest resident set of it and the ffmpegs it starts
    wrapper = (
        "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)"
    )
    t0 = time.perf_counter()
    env = dict(os.environ, VIDINTEL_HOME=str(b.home), DAGSTER_HOME=str(b.home / "dagster"))
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            wrapper,
            VIDINTEL,
            "ingest",
            str(f),
            "--project",
            "one-hour-video",
            "--video-id",
            "hour",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=7200,
        env=env,
    )
    wall = time.perf_counter() - t0
    peak_mb = int(res.stdout.strip().splitlines()[-1]) / 1024 if res.stdout.strip() else float("nan")
    m = b.memory("one-hour-video", "hour")
    cuts = [round(x.start_s, 2) for x in (m.markers if m else []) if x.type == "shot_boundary"]
    out.figures = {
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(peak_mb),
        "cuts": cuts,
        "x_realtime": round(3600 / wall, 1),
    }
    out.ok = (
        res.returncode == 0
        and m is not None
        and peak_mb < 1536
        and all(any(abs(c - t) < 0.1 for c in cuts) for t in (600, 1200, 1800, 2400, 3000))
    )
    out.happened = (
        f"ingested in {wall:.0f} s ({3600 / wall:.1f}x real time), peak RSS {peak_mb:.0f} MB, cuts at {cuts}"
        if res.returncode == 0
        else f"unexpected: {res.stderr[-300:]}"
    )


# --------------------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------------------

FAULTY = """
import asyncio, json, os, time
from pathlib import Path
from vidintel_pipeline.plugin_api.contracts import BaseTemporalPlugin, PluginInfo, RateLimitError, TemporalMarker
from vidintel_pipeline.runtime import in_process

class Faulty(BaseTemporalPlugin):
    def get_plugin_info(self):
        return {"plugin_name": "faulty_%(mode)s", "plugin_version": "0.1.0", "supported_events": ["custom_prompt"]}

    async def detect_markers(self, chunk, config):
        mode = "%(mode)s"
        if mode == "raises":
            raise RuntimeError("provider SDK blew up")
        if mode == "hangs":
            await asyncio.sleep(3600)
        if mode == "blocks":
            await asyncio.to_thread(time.sleep, 3600)
        if mode == "malformed":
            return [{"type": "custom_prompt", "start_s": "soon", "end_s": -1, "label": "x", "confidence": 7}]
        if mode == "early":  # half a frame before the start, as a detector's run start can be, and a good one
            return [TemporalMarker(type="custom_prompt", start_s=chunk.start_s - 0.006667, end_s=chunk.start_s + 0.5,
                                   label="early", confidence=1.0, plugin="faulty_early"),
                    TemporalMarker(type="custom_prompt", start_s=chunk.start_s + 1.0, end_s=chunk.start_s + 1.2,
                                   label="good", confidence=1.0, plugin="faulty_early")]
        if mode == "flaky":  # throttled on its first two calls in this home, whatever the process
            counter = Path(os.environ["VIDINTEL_HOME"]) / "flaky-calls"
            n = int(counter.read_text()) if counter.exists() else 0
            counter.write_text(str(n + 1))
            if n < 2:
                raise RateLimitError("429 Too Many Requests", plugin="faulty_flaky")
        return [TemporalMarker(type="custom_prompt", start_s=chunk.start_s, end_s=chunk.start_s, label="flaky ok",
                               confidence=1.0, plugin="faulty_%(mode)s")]
"""


def faulty(b: Bench, mode: str, *, alone: bool = False, **policy: Any) -> dict:
    """Temporal plugin config: the faulty plugin beside local_shots, with local_technical_cues as its fallback
    (``alone``: the faulty plugin only, no fallback)."""
    folder = b.root / "faulty" / mode
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"faulty_{mode}.py").write_text(textwrap.dedent(FAULTY % {"mode": mode}))
    plugins = [f"faulty_{mode}"] if alone else [f"faulty_{mode}", "local_shots"]
    fallbacks = {} if alone else {f"faulty_{mode}": ["local_technical_cues"]}
    return {
        "temporal_plugins": {
            "config": {"plugin_paths": [str(folder)], "plugins": plugins, "fallbacks": fallbacks, **policy}
        }
    }


def plugin_runs(result: Any) -> dict[str, dict]:
    import dagster as dg

    from vidintel_pipeline.runtime.instance import get_instance

    ev = get_instance().get_latest_materialization_event(dg.AssetKey("temporal_markers"))
    runs = ev.asset_materialization.metadata["plugins"].value if ev and ev.run_id == result.run_id else []
    return {r["plugin"]: r for r in runs}


@case("fault", "a plugin that raises: its fallback runs, the rest go on")
def plugin_raises(b: Bench, out: Outcome) -> None:
    r = b.drop_and_run("plugin-raises", "v", b.clip("v.mp4"), resources=faulty(b, "raises"))
    runs = plugin_runs(r)
    f = runs.get("faulty_raises", {})
    out.ok = (
        r.success
        and f.get("status") == "failed"
        and "blew up" in f.get("error", "")
        and runs.get("local_technical_cues", {}).get("fallback_for") == "faulty_raises"
        and runs["local_shots"]["status"] == "ok"
    )
    out.happened = (
        f"run ok; faulty_raises failed ({f.get('error', '?')[:60]}), local_technical_cues ran as its fallback"
    )


def timed_out(b: Bench, out: Outcome, project: str, mode: str) -> None:
    """The faulty plugin never returns: a 2 s timeout, no in-plugin retry, the fallback runs, the step ends."""
    t0 = time.perf_counter()
    r = b.drop_and_run(project, "v", b.clip("v.mp4"), resources=faulty(b, mode, timeout_s=2, max_retries=0))
    runs, wall = plugin_runs(r), time.perf_counter() - t0
    f = runs.get(f"faulty_{mode}", {})
    out.ok = r.success and "timed out after 2 s" in f.get("error", "") and "local_technical_cues" in runs and wall < 120
    out.happened = (
        f"run ok in {wall:.0f} s; {f.get('error', '?')}; fallback ran"
        if out.ok
        else f"unexpected after {wall:.0f} s: {f or b.reasons(r)}"
    )


@case("fault", "a plugin that never answers (awaits forever): timeout, then fallback")
def plugin_hangs(b: Bench, out: Outcome) -> None:
    timed_out(b, out, "plugin-hangs", "hangs")


@case("fault", "a plugin blocked in a thread (sleeps forever): timeout, then fallback, step ends")
def plugin_blocks_a_thread(b: Bench, out: Outcome) -> None:
    timed_out(b, out, "plugin-blocks-a-thread", "blocks")


@case("fault", "a plugin returning only malformed markers: each dropped, the plugin failed, none written")
def plugin_malformed(b: Bench, out: Outcome) -> None:
    r = b.drop_and_run("plugin-malformed", "v", b.clip("v.mp4"), resources=faulty(b, "malformed"))
    m = b.memory("plugin-malformed", "v")
    f = plugin_runs(r).get("faulty_malformed", {})
    out.ok = (
        r.success
        and "malformed" in f.get("error", "")
        and m is not None
        and not any("faulty" in x.plugin for x in m.markers)
    )
    out.happened = f"run ok; {f.get('error', '?')[:90]}; memory holds no marker of it"


@case(
    "fault", "a plugin's marker half a frame before 0 (-0.006667 s): that marker clamped, the rest of its result kept"
)
def plugin_marker_before_zero(b: Bench, out: Outcome) -> None:
    r = b.drop_and_run("plugin-marker-before-zero", "v", b.clip("v.mp4"), resources=faulty(b, "early"))
    m = b.memory("plugin-marker-before-zero", "v")
    f = plugin_runs(r).get("faulty_early", {})
    mine = sorted((x.label, x.start_s) for x in m.markers if x.plugin == "faulty_early") if m else []
    out.ok = (
        r.success
        and f.get("status") == "ok"
        and f.get("clamped") == 1
        and mine == [("early", 0.0), ("good", 1.0)]
        and any("clamped" in w for w in m.warnings)
    )
    out.happened = f"run ok; clamped {f.get('clamped')}, markers {mine}; memory warns: {m.warnings[:1] if m else '-'}"


@case("fault", "the only plugin throttled twice (429), in-plugin retries off: Dagster's step retry policy retries")
def transient_error_retried(b: Bench, out: Outcome) -> None:
    import dagster as dg

    r = b.drop_and_run(
        "transient-error-retried", "v", b.clip("v.mp4"), resources=faulty(b, "flaky", alone=True, max_retries=0)
    )
    retries = [e for e in r.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    runs = plugin_runs(r)
    out.ok = r.success and len(retries) >= 1 and runs.get("faulty_flaky", {}).get("status") == "ok"
    out.happened = (
        f"run ok after {len(retries)} step retr{'y' if len(retries) == 1 else 'ies'} of "
        f"{sorted({e.step_key for e in retries})}"
    )


@case("fault", "a permanent error (corrupt video): failed once, not retried")
def permanent_error_not_retried(b: Bench, out: Outcome) -> None:
    import dagster as dg

    f = b.media_dir / "garbage.mp4"
    f.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(5000))
    r = b.drop_and_run("permanent-error-not-retried", "garbage", f)
    retries = [e for e in r.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    expect_error(out, r, b, "garbage.mp4")
    out.ok = out.ok and not retries
    out.happened += f" | step retries: {len(retries)}"


@case("fault", "worker SIGKILLed mid-materialization, then the partition is run again")
def killed_mid_run(b: Bench, out: Outcome) -> None:
    f = b.clip("long.mp4", seconds=30, size="640x360")
    env = dict(os.environ)
    proc = subprocess.Popen(
        [VIDINTEL, "ingest", str(f), "--project", "killed-mid-run", "--video-id", "v", "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    chunks = b.home / "data/ingest/projects/killed-mid-run/videos/v/chunks"
    deadline = time.time() + 300
    while time.time() < deadline and not (chunks / "manifest.json").exists() and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # chunks are written; audio and analysis are under way
    if proc.poll() is not None:
        out.happened = "the ingest finished before it could be killed: nothing was tested"
        return
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = sorted(p.name for p in chunks.parent.rglob("*") if p.is_file())
    res = b.vidintel("ingest", str(f), "--project", "killed-mid-run", "--video-id", "v", "--quiet")
    m = b.memory("killed-mid-run", "v")
    manifest = (
        json.loads((chunks / "manifest.json").read_text()) if (chunks / "manifest.json").exists() else {"chunks": []}
    )
    on_disk = sorted(p.name for p in chunks.glob("chunk_*"))
    listed = sorted(Path(c["key"]).name for c in manifest["chunks"])
    sources = list((chunks.parent / "source").glob("*"))
    cuts = [x.start_s for x in (m.markers if m else []) if x.type == "shot_boundary"]
    out.ok = res.returncode == 0 and m is not None and on_disk == listed and len(sources) == 1 and len(cuts) == 1
    out.happened = (
        f"killed with {len(killed_at)} files written; re-run ok: {len(on_disk)} chunks = manifest, one source, "
        f"one cut at {cuts}"
        if out.ok
        else f"unexpected: rc={res.returncode} {res.stderr[-300:]} {on_disk} {listed}"
    )


@case("fault", "disk full: a file-size limit (RLIMIT_FSIZE) hit while storing the source, and while extracting audio")
def disk_full(b: Bench, out: Outcome) -> None:
    # a home of its own: the limit applies to every write of the process, the shared SQLite instance's too
    home = b.root / "disk-full-home"
    f = b.clip("fills.mp4", seconds=60, size="320x180", extra=("-crf", "40", "-b:a", "16k"))
    wav_bytes = 60 * 16000 * 2  # the 16 kHz mono WAV the audio asset writes: bigger than this source
    results = {}
    for what, limit in (("source copy", f.stat().st_size // 2), ("audio", (f.stat().st_size + wav_bytes) // 2)):

        def cap(limit: int = limit) -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        res = b.vidintel(
            "ingest",
            str(f),
            "--project",
            "disk-full",
            "--video-id",
            "v",
            "--quiet",
            preexec_fn=cap,
            env={"VIDINTEL_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")},
        )
        video = home / "data/ingest/projects/disk-full/videos/v"
        stored = (
            sorted(p.relative_to(video).as_posix() for p in video.rglob("*") if p.is_file()) if video.exists() else []
        )
        partial = (
            [
                p
                for p in (home / "data").rglob("*")
                if p.is_file() and (".partial" in p.name or ".staging" in p.as_posix() or p.name.startswith(".tmp"))
            ]
            if (home / "data").exists()
            else []
        )
        reason = next(
            (ln.strip() for ln in reversed(res.stderr.splitlines()) if "limit" in ln or "too large" in ln.lower()),
            res.stderr[-200:],
        )
        results[what] = {"rc": res.returncode, "reason": reason, "stored": stored, "partial": [str(p) for p in partial]}
    src_ok = (
        results["source copy"]["rc"] == 2
        and not results["source copy"]["stored"]
        and not results["source copy"]["partial"]
    )
    audio_ok = (
        results["audio"]["rc"] == 2
        and "file size limit" in results["audio"]["reason"]
        and "chunks/audio_16k.wav" not in results["audio"]["stored"]
        and not results["audio"]["partial"]
    )
    out.ok = src_ok and audio_ok and not (home / "data/output/projects/disk-full/memories/v.json").exists()
    out.figures = results
    out.happened = (
        f"source copy: refused ({results['source copy']['reason'][:70]}), nothing stored; audio: "
        f"{results['audio']['reason'][:120]}; no WAV, no partial file"
    )


@contextlib.contextmanager
def moto_s3(bucket: str):
    """moto's S3 server on a free loopback port, with ``bucket`` created; yields (server holder, url)."""
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    holder = {"server": ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False), "port": port}
    holder["server"].start()
    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    url = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket=bucket)
        yield holder, url
    finally:
        holder["server"].stop()
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@case("fault", "S3 server stopped in the middle of a multipart upload, then restarted")
def s3_stopped_mid_upload(b: Bench, out: Outcome) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    from vidintel.resources import VidintelStorage
    from vidintel_pipeline.storage.stores import StorageError

    with moto_s3("media") as (holder, url):
        store = (
            VidintelStorage(s3_bucket="media", s3_endpoint_url=url, multipart_threshold_mb=5).ingest().scoped("tenant")
        )
        watcher = boto3.client("s3", endpoint_url=url)
        big = b.media_dir / "big.bin"
        big.write_bytes(os.urandom(120 * 2**20))
        key = "projects/tenant/videos/v/source/big.mp4"
        err: list[BaseException] = []

        def upload() -> None:
            try:
                store.put_file(key, big)
            except BaseException as exc:  # noqa: BLE001
                err.append(exc)

        t = threading.Thread(target=upload)
        t.start()
        deadline = time.time() + 60
        while time.time() < deadline and not watcher.list_multipart_uploads(Bucket="media").get("Uploads"):
            time.sleep(0.005)
        time.sleep(0.05)  # a part or two in
        holder["server"].stop()
        t.join(300)
        holder["server"] = ThreadedMotoServer(ip_address="127.0.0.1", port=holder["port"], verbose=False)
        holder["server"].start()
        visible = store.exists(key)
        failed_clearly = bool(err) and isinstance(err[0], StorageError)
        store.put_file(key, big)  # the retry after the outage
        same = store.size(key) == big.stat().st_size
    out.ok = failed_clearly and not visible and same
    out.happened = (
        f"upload failed: {str(err[0])[:110] if err else 'no error'}; no partial object visible: {not visible}; "
        f"retry after restart stored all {big.stat().st_size >> 20} MB: {same}"
    )


# --------------------------------------------------------------------------------------------------
# security
# --------------------------------------------------------------------------------------------------


def refusals(attempts: dict[str, Callable[[], Any]]) -> dict[str, bool]:
    """For each attempt, whether the store or the id rules refused it."""
    from vidintel_pipeline.storage.layout import InvalidIdError
    from vidintel_pipeline.storage.stores import StorageError

    refused = {}
    for what, fn in attempts.items():
        try:
            fn()
            refused[what] = False
        except (StorageError, InvalidIdError, ValueError):
            refused[what] = True
    return refused


@case("security", "project A reaching project B's keys on the local store (crafted ids and keys)")
def tenant_isolation_local(b: Bench, out: Outcome) -> None:
    from vidintel.resources import VidintelStorage
    from vidintel_pipeline.storage.layout import VideoRef

    store = VidintelStorage().ingest().scoped("tenant-a")
    attempts = {
        "read B": lambda: store.get_bytes("projects/keep/videos/baseline/metadata/probe.json"),
        "list B": lambda: list(store.list("projects/keep/")),
        "write B": lambda: store.put_bytes("projects/keep/videos/baseline/metadata/probe.json", b"{}"),
        "dot-dot key": lambda: store.get_bytes("projects/tenant-a/../keep/videos/baseline/metadata/probe.json"),
        "absolute key": lambda: store.get_bytes(
            str(b.home / "data/ingest/projects/keep/videos/baseline/metadata/probe.json")
        ),
        "crafted video id": lambda: VideoRef("tenant-a", "../../keep/videos/baseline"),
        "crafted project id": lambda: VideoRef("keep/../tenant-a", "v"),
        "partition key with separator": lambda: VideoRef.from_partition_key("tenant-a__x__keep"),
    }
    refused = refusals(attempts)
    out.ok = all(refused.values())
    out.happened = (
        "all refused: " + ", ".join(refused) if out.ok else f"NOT refused: {[k for k, v in refused.items() if not v]}"
    )


@case("security", "S3: project A's scoped store reaching B's keys, and crafted keys in bucket events")
def tenant_isolation_s3(b: Bench, out: Outcome) -> None:
    from vidintel.resources import VidintelStorage
    from vidintel_pipeline.defs.sensors import classify

    with moto_s3("media") as (_, url):
        bucket = VidintelStorage(s3_bucket="media", s3_endpoint_url=url).ingest()
        secret = "projects/tenant-b/videos/v/metadata/probe.json"
        bucket.put_bytes(secret, b"{}")
        a = bucket.scoped("tenant-a")
        attempts = {
            "read B": lambda: a.get_bytes(secret),
            "list B": lambda: list(a.list("projects/tenant-b/")),
            "write B": lambda: a.put_bytes(secret, b"x"),
            "copy B to A": lambda: a.copy(secret, "projects/tenant-a/videos/v/metadata/probe.json"),
            "dot-dot key": lambda: a.get_bytes("projects/tenant-a/../tenant-b/videos/v/metadata/probe.json"),
        }
        refused = refusals(attempts)
        intact = bucket.get_bytes(secret) == b"{}"
    crafted = [
        "projects/a/videos/../../b/videos/x/source/x.mp4",
        "projects/a/videos/x/source/../../../b/secret.mp4",
        "projects/A B/videos/x/source/x.mp4",
        "projects/a/videos/x/source/sub/x.mp4",
        "projects//videos/x/source/x.mp4",
        "../projects/a/videos/x/source/x.mp4",
        "projects/a/videos/%2e%2e/source/x.mp4",
    ]
    accepted = [k for k in crafted if classify(k)[0] is not None]
    out.ok = all(refused.values()) and intact and not accepted
    out.happened = (
        f"on moto's S3: {', '.join(refused)} all refused, B's object intact; {len(crafted)} crafted event keys "
        f"skipped by the sensor"
        if out.ok
        else f"NOT refused: {[k for k, v in refused.items() if not v]} {accepted}"
    )


@case("security", "links and a FIFO dropped in incoming/: to another project's source, outside the store, dangling")
def links_in_drop_folder(b: Bench, out: Outcome) -> None:
    import dagster as dg

    from vidintel.resources import VidintelStorage
    from vidintel_pipeline.definitions import defs
    from vidintel_pipeline.runtime.instance import get_instance

    root = VidintelStorage().ingest().root
    victim = next((root / "projects/keep/videos/baseline/source").iterdir())
    before = hashlib.sha256(victim.read_bytes()).hexdigest()
    drop = root / "incoming/links-in-drop-folder"
    drop.mkdir(parents=True, exist_ok=True)
    os.symlink(victim, drop / "stolen.mp4")
    os.symlink(b.media_dir, drop / "outside")
    os.symlink(drop / "nowhere.mp4", drop / "dangling.mp4")
    os.mkfifo(drop / "pipe.mp4")
    old = os.utime
    for p in drop.iterdir():  # settled long ago, as far as the sensor can tell
        old(p, (time.time() - 3600, time.time() - 3600), follow_symlinks=False)
    ctx = dg.build_sensor_context(instance=get_instance(), resources={"storage": VidintelStorage()})
    result = defs.resolve_sensor_def("new_video_sensor")(ctx)
    adopted = [r.partition_key for r in result.run_requests if r.partition_key.startswith("links-in-drop-folder__")]
    after = hashlib.sha256(victim.read_bytes()).hexdigest() if victim.is_file() else "deleted"
    left = sorted(p.name for p in drop.iterdir())
    out.ok = (
        not adopted
        and after == before
        and left == ["dangling.mp4", "outside", "pipe.mp4", "stolen.mp4"]
        and not (root / "projects/links-in-drop-folder").exists()
    )
    out.happened = (
        f"adopted {adopted or 'nothing'}; keep's source {'intact' if after == before else after}; left in place: {left}"
    )
    for p in drop.iterdir():
        os.unlink(p)


@case("fault", "an ffmpeg 5.1 first on PATH; then VIDINTEL_FFMPEG pointing at it")
def old_ffmpeg_on_path(b: Bench, out: Outcome) -> None:
    stub = Path(__file__).parents[1] / "old_ffmpeg_bin"
    env = {"PATH": f"{stub}{os.pathsep}{os.environ.get('PATH', '')}"}
    ok = b.vidintel("ingest", str(b.clip("v.mp4")), "--project", "old-ffmpeg-on-path", "--quiet", env=env)
    bad = b.vidintel(
        "ingest",
        str(b.clip("v.mp4")),
        "--project",
        "old-ffmpeg-on-path",
        "--video-id",
        "w",
        "--quiet",
        env={**env, "VIDINTEL_FFMPEG": str(stub / "ffmpeg")},
    )
    said = bad.stderr.strip().splitlines()[-1] if bad.stderr.strip() else ""
    out.ok = ok.returncode == 0 and bad.returncode != 0 and "5.1" in said and "6.0" in said
    out.happened = (
        f"PATH's 5.1 ignored (exit {ok.returncode}); VIDINTEL_FFMPEG=5.1: exit {bad.returncode}, {said[:120]}"
    )


@case("load", "the same video ingested by two `vidintel ingest` at once")
def same_video_twice(b: Bench, out: Outcome) -> None:
    import fcntl

    from vidintel_pipeline.storage.layout import VideoRef
    from vidintel_pipeline.storage.locks import GRACE_S, video_lock_name

    # long enough that the first ingest holds the video's lock well past the second's grace (GRACE_S): once events
    # got cheap (runtime/sqlite_storage.py), a 3 s clip, and even 30 s of 720p, were ingested within it, and the
    # second CLI then simply ran after the first; 90 s of 720p holds it for several seconds
    clip = b.clip("twice.mp4", seconds=90, size="1280x720")
    env = dict(os.environ, VIDINTEL_HOME=str(b.home), DAGSTER_HOME=str(b.home / "dagster"))
    args = [VIDINTEL, "ingest", str(clip), "--project", "same-video-twice", "--video-id", "v", "--quiet"]
    lock = b.home / "locks" / f"{video_lock_name(VideoRef('same-video-twice', 'v'))}.lock"

    def held() -> bool:
        if not lock.exists():
            return False
        fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not held() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # the second starts once the first holds the lock: "at once", for certain
    procs = [first, subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)]
    res = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(c for c, _ in res)
    busy = [e for c, e in res if c != 0]
    m = b.memory("same-video-twice", "v")
    out.ok = codes == [0, 2] and busy and "already being ingested" in busy[0] and m is not None
    out.happened = f"exit codes {codes}; the other: {busy[0].strip().splitlines()[-1][:110] if busy else '-'}"
    out.figures = {"grace_s": GRACE_S}


@case("security", "secrets from the environment never reach run logs, event logs, metadata or storage")
def secrets_stay_secret(b: Bench, out: Outcome) -> None:
    canaries = {
        "AWS_SECRET_ACCESS_KEY": "canary-aws-3f9a1c7e",
        "OPENAI_API_KEY": "sk-canary-77d2e0b4",
        "NVIDIA_API_KEY": "nvapi-canary-0c1d",
    }
    old = {k: os.environ.get(k) for k in canaries}
    os.environ.update(canaries)
    try:
        r = b.drop_and_run(
            "secrets-stay-secret",
            "v",
            b.clip("v.mp4"),
            resources={
                "transcription": {
                    "config": {
                        "plugin": "openai_transcribe",
                        "fallbacks": ["faster_whisper"],
                        "options": {"base_url": "http://127.0.0.1:9/v1"},
                    }
                }
            },
        )
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    found = []
    for p in b.home.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            found += [f"{p.relative_to(b.home)}:{k}" for k, v in canaries.items() if v.encode() in data]
    out.ok = r.success and not found
    out.happened = (
        f"run ok (openai_transcribe unreachable, fell back); scanned every file of the home: "
        f"{sum(1 for p in b.home.rglob('*') if p.is_file())} files, no secret"
        if out.ok
        else f"unexpected: {found[:3]} {'' if r.success else b.reasons(r)}"
    )


@case("security", "plugins load only from plugins/, configured folders and entry points")
def plugins_only_from_configured_places(b: Bench, out: Outcome) -> None:
    from vidintel_pipeline.plugin_api.registry import PluginRegistry

    stray = b.root / "stray"
    stray.mkdir(exist_ok=True)
    (stray / "sneaky.py").write_text(textwrap.dedent(FAULTY % {"mode": "sneaky"}))
    cwd = os.getcwd()
    os.chdir(stray)  # a plugin file in the working directory or on sys.path is not a plugin folder
    sys.path.insert(0, str(stray))
    try:
        names = set(PluginRegistry.default().names())
    finally:
        os.chdir(cwd)
        sys.path.remove(str(stray))
    os.environ["VIDINTEL_PLUGIN_PATH"] = str(stray)
    try:
        configured = set(PluginRegistry.default().names())
    finally:
        del os.environ["VIDINTEL_PLUGIN_PATH"]
    out.ok = "faulty_sneaky" not in names and "faulty_sneaky" in configured
    out.happened = "not loaded from the working directory or sys.path; loaded once its folder is configured"


# --------------------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------------------


def _cost_report(instance, project: str) -> Optional[int]:
    """Videos of ``project`` in the latest project_costs materialization (None before there is one)."""
    from dagster import AssetKey

    ev = instance.get_latest_materialization_event(AssetKey("project_costs"))
    if ev is None:
        return None
    projects = ev.asset_materialization.metadata["projects"].value
    return projects.get(project, {}).get("videos")


def load_case(b: Bench, out: Outcome, n: int, concurrency: int) -> None:
    """``n`` videos dropped at once; the real daemon ticks the sensor and drains the queue."""
    from vidintel_pipeline.runtime.instance import get_instance

    proj = f"load-{n}"
    inbox = b.home / "data/ingest/incoming" / proj
    inbox.mkdir(parents=True)
    one = b.clip(f"load-{n}.mp4", seconds=1, size="64x36", audio=False)
    for i in range(n):
        shutil.copy(one, inbox / f"clip {i:03d}.mp4")
    dh = b.root / f"daemon-{n}"
    dh.mkdir()
    (dh / "dagster.yaml").write_text(
        textwrap.dedent(f"""\
        telemetry: {{enabled: false}}
        storage: {{sqlite: {{base_dir: {b.home / "dagster"}}}}}
        run_coordinator:
          module: dagster._core.run_coordinator
          class: QueuedRunCoordinator
          config: {{max_concurrent_runs: {concurrency}, dequeue_interval_seconds: 1}}
        sensors: {{num_workers: 1}}
        """)
    )
    env = dict(
        os.environ,
        DAGSTER_HOME=str(dh),
        VIDINTEL_SENSOR_SETTLE_S="0",
        VIDINTEL_SENSOR_MAX_RUNS="50",
        VIDINTEL_EXECUTOR="in_process",
        VIDINTEL_SENSOR_INTERVAL_S="2",
    )
    daemon_bin = str(Path(sys.executable).with_name("dagster-daemon"))
    log = open(b.root / f"daemon-{n}.log", "w")
    t0 = time.time()
    daemon = subprocess.Popen(
        [daemon_bin, "run", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    from dagster import DagsterRunStatus, RunsFilter

    max_running, peak_rss, done = 0, 0, []
    try:
        instance = get_instance()
        while time.time() - t0 < 60 * 60:
            runs = [r for r in instance.get_runs(RunsFilter(tags={"vidintel/project": proj}))]
            # the queue's runs (batches, or a video's own run) count against its limit; a video's run inside a
            # batch runs in that batch's process
            queued = [r for r in runs if "vidintel/batch" not in r.tags]
            running = [r for r in queued if r.status in (DagsterRunStatus.STARTED, DagsterRunStatus.STARTING)]
            max_running = max(max_running, len(running))
            done = [
                r
                for r in runs
                if r.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
            ]
            peak_rss = max(peak_rss, _tree_rss_mb(daemon.pid))
            if sum(r.job_name == "ingest_video" for r in runs) >= n and len(done) == len(runs):
                break
            time.sleep(0.5)
        # the cost report follows without anyone materializing it: the costs_automation sensor (on by default)
        # sees memory's new partitions and runs project_costs
        fresh_by = time.time() + 120
        while time.time() < fresh_by and _cost_report(instance, proj) != n:
            time.sleep(1)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(60)
        log.close()
    wall = time.time() - t0
    every = instance.get_runs(RunsFilter(tags={"vidintel/project": proj}))
    batches = [r for r in every if r.job_name == "ingest_batch"]
    runs = [r for r in every if r.job_name == "ingest_video"]  # a run per video, in a batch or not
    by_partition: dict[str, int] = {}
    for r in runs:
        by_partition[r.tags.get("dagster/partition", "?")] = (
            by_partition.get(r.tags.get("dagster/partition", "?"), 0) + 1
        )
    ok_runs = [r for r in runs if r.status == DagsterRunStatus.SUCCESS]
    memories = list((b.home / "data/output/projects" / proj / "memories").glob("*.json"))
    out.figures = {
        "videos": n,
        "runs": len(runs),
        "batch_runs": len(batches),
        "succeeded": len(ok_runs),
        "max_concurrent_seen": max_running,
        "limit": concurrency,
        "wall_s": round(wall),
        "videos_per_minute": round(len(ok_runs) / wall * 60, 1),
        "peak_rss_mb_daemon_and_runs": round(peak_rss),
        "cost_report_videos": _cost_report(instance, proj),
    }
    out.ok = (
        out.figures["cost_report_videos"] == n
        and len(by_partition) == n
        and all(v == 1 for v in by_partition.values())
        and len(ok_runs) == n
        and len(memories) == n
        and max_running <= concurrency
    )
    out.happened = (
        f"{len(ok_runs)}/{n} runs succeeded, one per video ({len(batches)} batch runs), at most {max_running} "
        f"queued runs at once (limit {concurrency}); "
        f"{out.figures['videos_per_minute']} videos/min, peak RSS {round(peak_rss)} MB; the cost report, refreshed by "
        f"costs_automation, counts {out.figures['cost_report_videos']} of the {n} videos"
    )


def _tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants, from /proc."""
    total, todo, seen = 0, [pid], set()
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d.name))
            except (OSError, ValueError, IndexError):
                pass
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
        todo += kids.get(p, [])
    return total / 1024


@case("load", "12 videos dropped at once; daemon, sensor and run queue (limit 2)")
def load_12_videos(b: Bench, out: Outcome) -> None:
    load_case(b, out, 12, 2)


@case("load", "200 videos dropped at once; daemon, sensor and run queue (limit 2)", slow=True)
def load_200_videos(b: Bench, out: Outcome) -> None:
    load_case(b, out, 200, 2)


# --------------------------------------------------------------------------------------------------


def ordered() -> list[Case]:
    """Load first: its daemon's sensor sees a store that holds only the good video (later cases leave
    half-done partitions on purpose, which a sensor would rightly pick up again)."""
    return sorted(CASES.values(), key=lambda c: c.group != "load")


def table(outcomes: list[Outcome]) -> str:
    rows = [("case", "group", "tried", "what happened", "lost", "ok", "s")]
    rows += [
        (o.case, o.group, o.tried, o.happened, o.lost, "yes" if o.ok else "NO", f"{o.seconds:g}") for o in outcomes
    ]
    return "\n".join(
        "| "
        + " | ".join(str(c).replace("|", "/") for c in r)
        + " |"
        + ("\n|---|---|---|---|---|---|---|" if i == 0 else "")
        for i, r in enumerate(rows)
    )
