"""The truth folder: one JSON file per labelled video, in frames of that video, read and checked strictly.

A file ``DIR/<name>.json`` describes one video; every key but ``video`` and ``fps`` is optional, and a key that
is present (even as an empty list) means "labelled": an empty ``cuts`` list scores every cut a plugin finds as
false, a missing one leaves shot detection unscored on that video::

    {
      "video": "bikes.mp4",                 # relative to the truth file, or absolute
      "fps": 25,                            # frames below are 0-based decoded frames; time = frame / fps
      "cuts": [30, 76],                     # hard cuts: the new shot's first frame
      "gradual": [{"type": "dissolve", "start_frame": 31, "end_frame": 39}],   # fade_in, fade_out, dissolve
      "color_bars": [[0, 49]],              # [first, last] frame
      "black_frames": [[120, 129]],
      "scene_changes": [30, 137],           # the new scene's first frame
      "speech": "the words spoken, in order"
    }

``benchmarks/truth_dir.py`` writes the project's own set in this form: the hand-labelled real clips, the cases
re-edited from them and the synthetic demo video.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from vidintel_pipeline.errors import UserError

GRADUAL_TYPES = ("dissolve", "fade_in", "fade_out")
KNOWN_KEYS = {"video", "fps", "frame_count", "cuts", "gradual", "color_bars", "black_frames", "scene_changes", "speech"}


@dataclass
class VideoTruth:
    name: str
    video: Path
    fps: float
    cuts: Optional[list[int]] = None
    gradual: Optional[list[dict[str, Any]]] = None  # {type, start_frame, end_frame}
    spans: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # color_bars / black_frames
    scene_changes: Optional[list[int]] = None
    speech: Optional[str] = None

    @property
    def shots_labelled(self) -> bool:
        return self.cuts is not None or self.gradual is not None


def load_truth_dir(folder: str | Path) -> list[VideoTruth]:
    """Every ``*.json`` in ``folder`` as a :class:`VideoTruth`; a clear :class:`UserError` naming the file and the
    field for anything malformed, and for a folder with no truth at all."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise UserError(f"truth folder {root} does not exist")
    files = sorted(root.glob("*.json"))
    if not files:
        raise UserError(f"no truth files (*.json) in {root}: see vidintel_pipeline/evaluation/truth.py for the format")
    return [load_truth(f) for f in files]


def load_truth(path: Path) -> VideoTruth:
    def bad(why: str) -> UserError:
        return UserError(f"truth file {path}: {why}")

    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise bad(f"not readable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise bad("must hold one JSON object")
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise bad(f"unknown keys {sorted(unknown)} (known: {sorted(KNOWN_KEYS)})")
    if not isinstance(raw.get("video"), str) or not raw["video"]:
        raise bad('"video" must name the video file')
    video = Path(raw["video"]).expanduser()
    video = video if video.is_absolute() else path.parent / video
    if not video.is_file():
        raise bad(f"video {video} does not exist")
    fps = raw.get("fps")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not fps > 0:
        raise bad('"fps" must be a positive number')

    def frames(key: str) -> Optional[list[int]]:
        v = raw.get(key)
        if v is None:
            return None
        if not isinstance(v, list) or not all(isinstance(f, int) and not isinstance(f, bool) and f >= 0 for f in v):
            raise bad(f'"{key}" must be a list of frame numbers (integers >= 0)')
        return sorted(v)

    def spans(key: str) -> Optional[list[tuple[int, int]]]:
        v = raw.get(key)
        if v is None:
            return None
        ok = isinstance(v, list) and all(
            isinstance(s, list) and len(s) == 2 and all(isinstance(f, int) for f in s) and 0 <= s[0] <= s[1] for s in v
        )
        if not ok:
            raise bad(f'"{key}" must be a list of [first, last] frame pairs')
        return [(a, b) for a, b in v]

    gradual = raw.get("gradual")
    if gradual is not None:
        ok = isinstance(gradual, list) and all(
            isinstance(g, dict)
            and g.get("type") in GRADUAL_TYPES
            and isinstance(g.get("start_frame"), int)
            and isinstance(g.get("end_frame"), int)
            and 0 <= g["start_frame"] <= g["end_frame"]
            for g in gradual
        )
        if not ok:
            raise bad(f'"gradual" entries need type ({", ".join(GRADUAL_TYPES)}), start_frame <= end_frame')
        gradual = [{k: g[k] for k in ("type", "start_frame", "end_frame")} for g in gradual]
    speech = raw.get("speech")
    if speech is not None and not isinstance(speech, str):
        raise bad('"speech" must be the spoken text')
    return VideoTruth(
        name=path.stem,
        video=video.resolve(),
        fps=float(fps),
        cuts=frames("cuts"),
        gradual=gradual,
        spans={k: s for k in ("color_bars", "black_frames") if (s := spans(k)) is not None},
        scene_changes=frames("scene_changes"),
        speech=speech,
    )
