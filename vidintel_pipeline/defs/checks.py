"""Asset checks, per partition, evaluated in the same step that writes the asset (so they run with every ingest).

``memory``: markers inside [0, duration]; no plugin failed (warning); a transcript when the audio is not silent;
cost within the per-video budget. ``exports``: every file parses with a reader other than the writer's code path
(pysubs2's parsers, ``json``, ``csv``, OpenTimelineIO's adapters). They appear on the asset's Checks tab.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Optional

import dagster as dg

from vidintel_pipeline.plugin_api.contracts import MemoryDocument

AUDIBLE_S = 3.0  # this much non-silent audio and no word transcribed: worth a look (music alone also trips it)
FRAME_SLACK_S = 0.05

MEMORY_CHECKS = [
    dg.AssetCheckSpec("markers_in_range", asset="memory", description="Every marker lies inside [0, duration]."),
    dg.AssetCheckSpec("no_plugin_failed", asset="memory", description="Every selected plugin ran (warning)."),
    dg.AssetCheckSpec(
        "transcript_when_speech",
        asset="memory",
        description=f"Audio with {AUDIBLE_S:g} s or more that is not silence has a transcript (warning).",
    ),
    dg.AssetCheckSpec(
        "cost_within_budget", asset="memory", description="The video's cost is within max_usd_per_video."
    ),
]
EXPORT_CHECKS = [dg.AssetCheckSpec("exports_parse", asset="exports", description="Every export reads back.")]


def memory_checks(doc: MemoryDocument, budget_usd: Optional[float]) -> list[dg.AssetCheckResult]:
    out = []
    bad = [
        f"{m.type} {m.label!r} {m.start_s:.3f}-{m.end_s:.3f}s"
        for m in doc.markers
        if m.start_s < -FRAME_SLACK_S or m.end_s > doc.duration_s + FRAME_SLACK_S or m.end_s < m.start_s
    ]
    out.append(
        dg.AssetCheckResult(
            check_name="markers_in_range",
            passed=not bad,
            metadata={"markers": len(doc.markers), "outside": len(bad), "first_outside": "; ".join(bad[:5])},
        )
    )
    failed = sorted({p["name"] for p in doc.plugins if p.get("status") not in ("ok", "cached")})
    out.append(
        dg.AssetCheckResult(
            check_name="no_plugin_failed",
            passed=not failed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"failed": ", ".join(failed) or "none", "warnings": "\n".join(doc.warnings[:5])},
        )
    )
    out.append(_speech_check(doc))
    spent = doc.cost.total_usd
    out.append(
        dg.AssetCheckResult(
            check_name="cost_within_budget",
            passed=budget_usd is None or spent <= budget_usd + 1e-9,
            metadata={
                "cost_usd": dg.FloatMetadataValue(round(spent, 6)),
                "budget_usd": "none set" if budget_usd is None else dg.FloatMetadataValue(budget_usd),
            },
        )
    )
    return out


def _speech_check(doc: MemoryDocument) -> dg.AssetCheckResult:
    ran_silence = any(p["name"] == "local_silence" and p.get("status") in ("ok", "cached") for p in doc.plugins)
    words = doc.transcript.word_count
    if not doc.source.get("has_audio"):
        return dg.AssetCheckResult(check_name="transcript_when_speech", passed=True, metadata={"audio": "none"})
    if not ran_silence:
        return dg.AssetCheckResult(
            check_name="transcript_when_speech",
            passed=True,
            metadata={"words": words, "audible_s": "unknown: local_silence did not run"},
        )
    silent = sum(m.end_s - m.start_s for m in doc.markers if m.label == "silence")
    audible = max(0.0, doc.duration_s - silent)
    return dg.AssetCheckResult(
        check_name="transcript_when_speech",
        passed=words > 0 or audible < AUDIBLE_S,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"words": words, "audible_s": dg.FloatMetadataValue(round(audible, 2))},
    )


def exports_check(texts: dict[str, str], rate: float) -> dg.AssetCheckResult:
    """Read each rendered export back; the first error per format is reported."""
    import opentimelineio as otio
    import pysubs2

    errors: dict[str, str] = {}
    counts: dict[str, Any] = {}
    readers = {
        "srt": lambda t: len(pysubs2.SSAFile.from_string(t, format_="srt")) if t.strip() else 0,
        "vtt": lambda t: len(pysubs2.SSAFile.from_string(t, format_="vtt")) if t.strip() != "WEBVTT" else 0,
        "json": lambda t: len(json.loads(t)["markers"]),
        "csv": lambda t: len(list(csv.DictReader(io.StringIO(t)))),
        "edl": lambda t: len(list(otio.adapters.read_from_string(t, "cmx_3600", rate=rate).find_clips())),
        "otio": lambda t: len(list(otio.adapters.read_from_string(t, "otio_json").find_clips())),
        "fcpxml": lambda t: len(list(otio.adapters.read_from_string(t, "fcp_xml").find_clips())),
    }
    for fmt, text in texts.items():
        try:
            counts[fmt] = readers[fmt](text)
        except Exception as exc:  # noqa: BLE001 - any reader error is the finding
            errors[fmt] = f"{type(exc).__name__}: {exc}"[:300]
    return dg.AssetCheckResult(
        check_name="exports_parse",
        passed=not errors,
        metadata={"items_read": dg.JsonMetadataValue(counts), "errors": dg.JsonMetadataValue(errors)},
    )
