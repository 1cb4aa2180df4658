"""Scenes from the shots: consecutive shots grouped into scenes, one ``scene_change`` marker where each new one starts.

A scene is a run of shots at one place and time (``tests/plugins/real_footage/truth/scenes.json`` has the
full definition the truth was labelled with). This plugin reads results, not pixels (``uses_results``): the
shot boundaries and black frames that the temporal plugins found, each shot's keyframe (``chunk.keyframes``) and
the transcript's word times. It decides every break between two shots with the editing's own grammar:

* a **fade through a field** (fade out, fade in, or both), a **dissolve**, or a run of **black frames** between two
  pictures starts a new scene: editors use them to say "elsewhere" or "later";
* a **hard cut while someone is speaking** (no pause of ``min_pause_s`` across the cut) stays in the scene:
  dialogue runs over shot/reverse-shot, rarely over a change of place;
* any other hard cut stays in the scene when the shots are **linked**: one of the scene's last ``window`` shots
  and one after the cut look alike (colour histograms of their keyframes at least as similar as the bar), so a
  shot/reverse-shot A-B-A keeps B in the scene; otherwise the cut starts a new scene.

The bar depends on how the video is cut. A video that marks its scene changes with transitions (it has at least
one) gets the low ``cut_similarity_with_transitions`` bar: there a plain cut is a new angle unless the pictures
share almost nothing. A video cut only with hard cuts (a montage, raw footage) gets the high ``cut_similarity``
bar: a cut must land on a near copy of a recent shot to stay in its scene. On the real dev set a hard cut inside
one scene (the Big Buck Bunny trailer: same meadow, new angle) scores 0.26-0.64, and a change of street in the bikes
montage 0.41-0.63 (``tests/plugins/test_scenes.py`` prints them): no single colour bar separates the two, and the
transitions are what tell the videos apart. Colour cannot recognise a place seen from a new side; without an image
model that ships offline, that is the limit of this plugin (README: "Scene changes").

Options (``temporal_plugins.options.local_scenes``):

* ``cut_similarity`` (0.72): histogram similarity a linked pair needs in a video without transitions.
* ``cut_similarity_with_transitions`` (0.25): the same bar in a video that has fades, dissolves or black runs.
* ``window`` (4): how many of the scene's most recent shots a new shot is compared with (A-B-A linking).
* ``max_link_s`` (90): shots further apart than this never link.
* ``min_pause_s`` (0.5): a silence in the speech at least this long lets a cut start a new scene.
* ``min_black_s`` (0.2): black-frame runs shorter than this are not a scene break.
* ``edge_s`` (1.0): a fade in at the very start or a fade out at the very end opens or closes the video and
  is not a scene change.
* ``min_scene_s`` (2.0): two transitions closer than this are one break.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from vidintel_pipeline.plugin_api.contracts import (
    AnalysisConfig,
    BaseTemporalPlugin,
    ChunkInfo,
    PluginError,
    PluginInfo,
    PluginOptions,
    TemporalMarker,
)

NAME = "local_scenes"


class ScenesOptions(PluginOptions):
    cut_similarity: float = 0.72
    cut_similarity_with_transitions: float = 0.25
    window: int = 4
    max_link_s: float = 90.0
    min_pause_s: float = 0.5
    min_black_s: float = 0.2
    edge_s: float = 1.0
    min_scene_s: float = 2.0


@dataclass
class Break:
    """The gap between two shots: where the next picture starts and how the editor got there."""

    start_s: float  # first changing frame (== at_s for a cut)
    end_s: float  # last changing frame
    at_s: float  # the first frame of what follows (for a fade through black: the middle of the black)
    kind: str  # cut, dissolve, fade, black
    field: str = ""  # for a fade: black, white, colour
    why: str = ""
    scene_change: bool = False
    similarity: Optional[float] = None


@dataclass
class Shot:
    start_s: float
    end_s: float
    hist: Optional[np.ndarray] = None
    keyframe_s: Optional[float] = None
    breaks_before: list[Break] = field(default_factory=list)


def histogram(bgr: np.ndarray) -> np.ndarray:
    """Hue-saturation-value histogram (16 x 4 x 4), L1-normalised: the palette of a picture, blind to layout, so a
    new angle on the same place keeps most of it."""
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    h = cv2.calcHist([hsv], [0, 1, 2], None, [16, 4, 4], [0, 180, 0, 256, 0, 256])
    return cv2.normalize(h, h, 1, 0, cv2.NORM_L1).flatten()


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """1 - Bhattacharyya distance: 1 for the same palette, 0 for disjoint ones."""
    return float(1.0 - cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


class LocalScenesPlugin(BaseTemporalPlugin):
    Options = ScenesOptions
    options: ScenesOptions

    def get_plugin_info(self) -> PluginInfo:
        return PluginInfo(
            plugin_name=NAME,
            plugin_version="1.0.0",
            supported_events=["scene_change", "scene_detection"],
            uses_results=True,
            accuracy={"scene_change": 1.0},
            accuracy_source="tests/plugins/test_scenes.py: F1 of scene changes at +-0.5 s on two hand-labelled real "
            "clips (bikes, the Big Buck Bunny trailer: 10 scene changes, 5 same-scene cuts); a small set",
            description="Groups shots into scenes: transitions, speech across cuts and keyframe colour links "
            "(CPU, no network).",
        )

    async def detect_markers(self, chunk: ChunkInfo, config: AnalysisConfig) -> list[TemporalMarker]:
        if not any(m.type == "shot_boundary" for m in chunk.markers):
            return []  # one shot (or no shot detector ran): one scene
        return await asyncio.to_thread(self._scenes, chunk)

    # ------------------------------------------------------------------------------------------------------
    def breaks(self, chunk: ChunkInfo) -> list[Break]:
        """Every break between two pictures, in time order: shot boundaries (a fade out and the fade in that
        follows it are one break) and runs of black frames no boundary covers."""
        o = self.options
        frame = 1.0 / (chunk.fps or 25.0)
        raw = sorted((m for m in chunk.markers if m.type == "shot_boundary"), key=lambda m: (m.start_s, m.end_s))
        out: list[Break] = []
        for m in raw:
            kind = str(m.attributes.get("transition") or "")
            if m.end_s - m.start_s < 0.5 * frame:
                kind = "cut"
            elif kind not in ("fade_in", "fade_out", "fade"):
                kind = "dissolve"  # any other gradual transition (a wipe, a provider's unnamed one) joins two pictures
            fld = str(m.attributes.get("field") or "")
            if kind == "fade_in" and out and out[-1].kind == "fade_out" and m.start_s - out[-1].end_s <= 1.0:
                prev = out[-1]  # fade out, (black), fade in: one break, the new picture starts mid-black
                prev.kind, prev.end_s = "fade", m.end_s
                prev.at_s = (prev.at_s + m.start_s) / 2
                continue
            if kind == "fade_in":
                if m.start_s - chunk.start_s < o.edge_s:
                    continue  # the video opens
                out.append(Break(m.start_s, m.end_s, m.start_s, "fade_in", fld))
            elif kind == "fade_out":
                if chunk.end_s - m.end_s < o.edge_s:
                    continue  # the video closes
                out.append(Break(m.start_s, m.end_s, m.end_s + frame, "fade_out", fld))
            elif kind == "fade":  # a fade through a field reported as one marker
                out.append(Break(m.start_s, m.end_s, (m.start_s + m.end_s) / 2, "fade", fld))
            elif kind == "dissolve":
                out.append(Break(m.start_s, m.end_s, m.start_s, "dissolve"))
            else:
                out.append(Break(m.start_s, m.start_s, m.start_s, "cut"))
        for kind in ("fade_out", "fade_in"):
            for b in out:
                if b.kind == kind:
                    b.kind = "fade"
        for m in chunk.markers:
            if m.type != "technical_cue" or m.label != "black_frames" or m.end_s - m.start_s < o.min_black_s:
                continue
            if m.start_s - chunk.start_s < o.edge_s or chunk.end_s - m.end_s < o.edge_s:
                continue
            near = [b for b in out if b.start_s - 0.5 <= m.end_s and m.start_s <= b.end_s + 0.5]
            if near:  # the black of a fade already found; after a fade out, the next picture comes when it ends
                for b in near:
                    if b.kind == "fade" and b.at_s < m.end_s and b.end_s <= m.start_s + 0.5:
                        b.end_s, b.at_s = max(b.end_s, m.end_s), m.end_s
                continue
            out.append(Break(m.start_s, m.end_s, m.end_s, "black", "black"))
        out.sort(key=lambda b: b.at_s)
        # two transitions with less than min_scene_s of picture between are one (a dissolve into a clip that is
        # still fading in from black): the "scene" between them would be a blend, not a place
        merged: list[Break] = []
        for b in out:
            last = merged[-1] if merged else None
            if last and last.kind != "cut" and b.kind != "cut" and b.start_s - last.end_s < o.min_scene_s:
                last.end_s = max(last.end_s, b.end_s)
                continue
            merged.append(b)
        return merged

    def shots(self, chunk: ChunkInfo, breaks: list[Break]) -> list[Shot]:
        """The pictures between the breaks, each with the histogram of the keyframe inside it (if any)."""
        spans = []
        start = chunk.start_s
        for b in breaks:
            spans.append((start, b.start_s if b.kind != "cut" else b.at_s))
            start = b.end_s if b.kind != "cut" else b.at_s
        spans.append((start, chunk.end_s))
        shots = [Shot(a, max(a, z)) for a, z in spans]
        for i, b in enumerate(breaks):
            shots[i + 1].breaks_before.append(b)
        for kf in sorted(chunk.keyframes, key=lambda k: k.time_s):
            shot = next((s for s in shots if s.start_s - 1e-6 <= kf.time_s < s.end_s - 1e-6), None)
            if shot is None or shot.hist is not None or not kf.path:
                continue
            img = cv2.imread(kf.path, cv2.IMREAD_COLOR)
            if img is None:
                raise PluginError(f"keyframe {kf.path} is not a readable image", plugin=NAME)
            shot.hist, shot.keyframe_s = histogram(img), kf.time_s
        return shots

    def speaking_at(self, chunk: ChunkInfo, t: float) -> bool:
        """Speech runs across ``t``: a word spans it, or the words either side leave less than min_pause_s."""
        tr = chunk.transcript
        if tr is None:
            return False
        words = [(w.start_s, w.end_s) for s in tr.segments for w in s.words] or [
            (s.start_s, s.end_s) for s in tr.segments if s.text.strip()
        ]
        before = max((e for a, e in words if a < t), default=None)
        after = min((a for a, e in words if e > t), default=None)
        if before is None or after is None:
            return False
        return before >= t or after <= t or after - before < self.options.min_pause_s

    def decide(self, chunk: ChunkInfo) -> list[Break]:
        """Every break between shots, each with ``scene_change`` decided and the reason in ``why``."""
        o = self.options
        breaks = self.breaks(chunk)
        shots = self.shots(chunk, breaks)
        transitions = [b for b in breaks if b.kind != "cut"]
        bar = o.cut_similarity_with_transitions if transitions else o.cut_similarity
        for b in transitions:
            b.scene_change = True
            b.why = {
                "fade": f"fade through {b.field or 'a field'}",
                "dissolve": "dissolve",
                "black": f"{b.end_s - b.start_s:.2f} s of black",
            }[b.kind]
        # a cut stays in the scene if speech runs across it, or if a shot before it and one after it link: each
        # cut keeps the best similarity of any pair of shots that spans it (A-B-A: A to A spans both cuts)
        for j, shot in enumerate(shots):
            if shot.hist is None:
                continue
            for i in range(j - 1, -1, -1):
                between = [shots[k].breaks_before[0] for k in range(i + 1, j + 1)]
                if any(b.kind != "cut" for b in between) or shot.start_s - shots[i].end_s > o.max_link_s:
                    break  # never link across a transition, nor too far back
                if sum(s.hist is not None for s in shots[i + 1 : j]) >= o.window:
                    break
                other = shots[i].hist
                if other is None:
                    continue
                sim = similarity(other, shot.hist)
                for b in between:
                    b.similarity = sim if b.similarity is None else max(b.similarity, sim)
        for b in breaks:
            if b.kind != "cut":
                continue
            if self.speaking_at(chunk, b.at_s):
                b.why = "speech runs across the cut"
            elif b.similarity is None:
                b.why = "no keyframe to compare: kept in the scene"
            elif b.similarity >= bar:
                b.why = f"the shots either side link (similarity {b.similarity:.2f} >= {bar:.2f})"
            else:
                b.scene_change = True
                b.why = f"the pictures differ (similarity {b.similarity:.2f} < {bar:.2f})"
        return breaks

    def _scenes(self, chunk: ChunkInfo) -> list[TemporalMarker]:
        breaks = self.decide(chunk)
        bar = (
            self.options.cut_similarity_with_transitions
            if any(b.kind != "cut" for b in breaks)
            else self.options.cut_similarity
        )
        out: list[TemporalMarker] = []
        scene_start = chunk.start_s
        for b in breaks:
            if not b.scene_change:
                continue
            sim = b.similarity
            conf = {"fade": 0.9, "black": 0.9, "dissolve": 0.8}.get(b.kind) or round(
                min(0.9, 0.5 + 0.4 * (1.0 - (sim or 0.0) / max(bar, 1e-6))), 3
            )
            out.append(
                TemporalMarker(
                    type="scene_change",
                    start_s=round(b.start_s, 6),
                    end_s=round(b.end_s, 6),
                    label=f"scene {len(out) + 2}",
                    confidence=conf,
                    plugin=NAME,
                    attributes={
                        "scene": len(out) + 1,  # 0-based index of the scene this break starts
                        "starts_at_s": round(b.at_s, 6),
                        "transition": b.kind,
                        "why": b.why,
                        "similarity": None if sim is None else round(sim, 3),
                        "previous_scene_s": [round(scene_start, 6), round(b.start_s, 6)],
                    },
                )
            )
            scene_start = b.at_s
        return out
