"""Write the project's labelled videos as a truth folder for ``vidintel plugins benchmark --truth DIR``.

The set: the hand-labelled real clips and the cases re-edited from them (tests/plugins/real_footage: cuts,
gradual transitions, colour bars), the hand-labelled scene changes (truth/scenes.json: bikes and the Big Buck
Bunny trailer, whose shots are not labelled for shot detection and so score scene changes only), and the
synthetic demo video (cuts, a dissolve, a fade through black as fade_out + fade_in split at its midpoint,
colour bars, the spoken text). Black frames are left unlabelled: no clip here labels them frame by frame.

    python benchmarks/truth_dir.py DIR [--only NAME,...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "plugins" / "real_footage")]

from devset import HERE, dev_set, real_clips  # noqa: E402


def entries(cache_dir: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for clip in dev_set():
        out[clip.name] = {
            "video": str(clip.path),
            "fps": clip.fps,
            "frame_count": clip.frames,
            "cuts": clip.cuts,
            "gradual": clip.gradual,
            "color_bars": [list(b) for b in clip.bars],
        }
    scenes = json.loads((HERE / "truth" / "scenes.json").read_text())["clips"]
    real = real_clips()
    for name, s in scenes.items():
        e = out.setdefault(name, {"video": str(real[name]), "fps": s["fps"], "frame_count": s["frame_count"]})
        e["scene_changes"] = s["scene_changes"]

    from vidintel_pipeline.media.samples import render_demo

    demo = cache_dir / "media" / "demo.mp4"  # its own .truth.json must not land among the truth files
    demo.parent.mkdir(parents=True, exist_ok=True)
    truth = render_demo(demo)
    fps = truth.fps
    gradual = []
    for t in truth.transitions:
        a, b = round(t["start_s"] * fps), round(t["end_s"] * fps) - 1
        if t["kind"] == "dissolve":
            gradual.append({"type": "dissolve", "start_frame": a, "end_frame": b})
        else:
            mid = (a + b) // 2
            gradual += [
                {"type": "fade_out", "start_frame": a, "end_frame": mid},
                {"type": "fade_in", "start_frame": mid + 1, "end_frame": b},
            ]
    out["demo"] = {
        "video": str(demo),
        "fps": fps,
        "cuts": [round(c * fps) for c in truth.cuts],
        "gradual": gradual,
        "color_bars": [[round(s * fps), round(e * fps) - 1] for s, e in truth.bars],
        "speech": " ".join(s["text"] for s in truth.speech),
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--only", help="comma-separated clip names")
    args = ap.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    for name, e in entries(folder).items():
        if only is None or name in only:
            (folder / f"{name}.json").write_text(json.dumps(e, indent=2))
            print(folder / f"{name}.json")


if __name__ == "__main__":
    main()
