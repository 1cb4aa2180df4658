"""``vidintel compare``: where two plugins disagree on one video, from the markers its memory keeps.

Markers that two plugins both found were merged into one naming both (``attributes.plugins``): those are
agreements. Every other marker of either plugin is a disagreement, listed with the other plugin's nearest marker
of the same type (within ``NEAR_S``), so "a cut at 3.20 s against a dissolve from 3.12 s" reads as one row.
"""

from __future__ import annotations

from typing import Any, Optional

from vidintel_pipeline.errors import UserError

NEAR_S = 1.0


def found_by(m: dict[str, Any]) -> set[str]:
    """The plugins that found a memory marker (a merged marker names them all)."""
    return set(m.get("attributes", {}).get("plugins") or [m["plugin"]])


def compare(memory: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    ran = {p["name"]: p.get("status") for p in memory.get("plugins", [])}
    where = f"{memory['project_id']}/{memory['video_id']}"
    for name in (a, b):
        if name not in ran:
            raise UserError(
                f"{name} did not run on {where} (ran: {', '.join(sorted(ran)) or 'none'}): ingest it with "
                f"--plugins naming both, e.g. vidintel ingest FILE --project {memory['project_id']} "
                f"--video-id {memory['video_id']} --plugins {a},{b}"
            )
        if ran[name] != "ok":
            raise UserError(f"{name} {ran[name]} on {where}: nothing to compare (see vidintel show)")
    markers = memory.get("markers", [])
    agree, rows = 0, []
    for m in markers:
        who = found_by(m)
        if a in who and b in who:
            agree += 1
            continue
        if a not in who and b not in who:
            continue
        mine, other = (a, b) if a in who else (b, a)
        near = _nearest(m, [x for x in markers if other in found_by(x) and x["type"] == m["type"]])
        rows.append(
            {
                "start_s": m["start_s"],
                "end_s": m["end_s"],
                "type": m["type"],
                "only": mine,
                "label": m["label"],
                "confidence": m["confidence"],
                "other": None
                if near is None
                else {k: near[k] for k in ("start_s", "end_s", "label")} | {"plugin": other},
            }
        )
    rows.sort(key=lambda r: (r["start_s"], r["only"]))
    return {
        "project_id": memory["project_id"],
        "video_id": memory["video_id"],
        "plugins": [a, b],
        "agree": agree,
        "only": {a: sum(r["only"] == a for r in rows), b: sum(r["only"] == b for r in rows)},
        "disagreements": rows,
    }


def _nearest(m: dict[str, Any], others: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    def gap(x: dict[str, Any]) -> float:
        return max(0.0, x["start_s"] - m["end_s"], m["start_s"] - x["end_s"])

    close = [x for x in others if gap(x) <= NEAR_S]
    return min(close, key=gap) if close else None
