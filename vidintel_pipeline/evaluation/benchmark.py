"""``vidintel plugins benchmark``: every free plugin run on a truth folder's videos through the real pipeline.

Each labelled video is ingested (project ``benchmark`` by default) with the chosen temporal plugins, so the figures
describe what an ingest produces: the shared decode, chunking, merging and the derived step. The default plugins run
together, as a default ingest runs them; the others (TransNetV2, a user's plugin) run in a second ingest, because
derived plugins read every shot plugin's results: measured with TransNetV2's dissolves beside local_shots' fades,
local_scenes scored F1 0.57 instead of 1.00 on bikes and the trailer. A marker merged from several plugins counts
for each of them (``attributes.plugins``). Transcription plugins are run on each video's extracted audio. Plugins
that bill per minute are left out unless named, so a benchmark never spends money by surprise.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

from vidintel_pipeline.errors import UserError
from vidintel_pipeline.evaluation.compare import found_by
from vidintel_pipeline.evaluation.measured import write_measured
from vidintel_pipeline.evaluation.scoring import SCORED_FEATURES, Counts, score_markers, word_error_rate
from vidintel_pipeline.evaluation.truth import VideoTruth, load_truth_dir
from vidintel_pipeline.plugin_api.contracts import TemporalMarker


def choose(registry: Any, names: Optional[list[str]]) -> tuple[list[Any], dict[str, str]]:
    """The plugins' infos to benchmark and, for the others, why they are not."""
    skipped: dict[str, str] = {}
    if names:
        unknown = [n for n in names if n not in registry.entries]
        if unknown:
            raise UserError(f"unknown plugin(s) {unknown}; installed: {', '.join(registry.names())}")
        chosen = [registry.entries[n].info for n in names]
    else:
        chosen = []
        for _, e in sorted(registry.entries.items()):
            i = e.info
            if i.cost_per_minute > 0:
                skipped[i.plugin_name] = f"bills ${i.cost_per_minute:g}/min: name it with --plugins to include it"
            elif i.kind == "diarization":
                skipped[i.plugin_name] = "no speaker truth in the truth format yet"
            else:
                chosen.append(i)
    out = []
    for i in chosen:
        scorable = [f for f in i.supported_events if f in SCORED_FEATURES]
        if not scorable:
            skipped[i.plugin_name] = f"no truth for its capabilities ({', '.join(i.supported_events)})"
        else:
            out.append(i)
    return out, skipped


def run_benchmark(
    truth_dir: str | Path,
    plugins: Optional[list[str]] = None,
    project: str = "benchmark",
    store: bool = True,
    say: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    from vidintel_pipeline.plugin_api.registry import PluginRegistry

    truths = load_truth_dir(truth_dir)
    registry = PluginRegistry.default()
    infos, skipped = choose(registry, plugins)
    temporal = [i for i in infos if i.kind == "temporal"]
    transcribers = [i for i in infos if i.kind == "transcription"]
    counts: dict[str, dict[str, Counts]] = {i.plugin_name: {} for i in infos}
    videos: dict[str, dict[str, int]] = {i.plugin_name: {} for i in infos}
    per_video: dict[str, dict[str, dict[str, float]]] = {i.plugin_name: {} for i in infos}
    failed: dict[str, str] = {}

    def add(name: str, video: str, scores: dict[str, Counts]) -> None:
        for f, c in scores.items():
            counts[name].setdefault(f, Counts())
            counts[name][f] += c
            videos[name][f] = videos[name].get(f, 0) + 1
            per_video[name].setdefault(video, {})[f] = round(c.f1, 4)

    for n, truth in enumerate(truths, 1):
        say(f"[{n}/{len(truths)}] {truth.name}")
        for group in _groups(temporal):
            memory = _ingest(truth, project, [i.plugin_name for i in group])
            status = {p["name"]: p.get("status") for p in memory.get("plugins", [])}
            for i in group:
                name = i.plugin_name
                if status.get(name) not in (None, "ok", "cached"):
                    reason = next((w for w in memory.get("warnings", []) if name in w), status.get(name) or "")
                    failed[name] = f"{truth.name}: {reason}"
                    continue
                mine = [TemporalMarker.model_validate(m) for m in memory["markers"] if name in found_by(m)]
                add(name, truth.name, score_markers(mine, truth, i.supported_events))
        if truth.speech:
            for i in transcribers:
                try:
                    text = _transcribe(registry, i.plugin_name, truth)
                except Exception as exc:  # one plugin's failure is reported, the others still run
                    failed[i.plugin_name] = f"{truth.name}: {type(exc).__name__}: {exc}"
                    continue
                wer = word_error_rate(truth.speech, text)
                if wer is not None:  # scored as a count: words right of the reference's words
                    n_ref = len(truth.speech.split())
                    right = max(0, round((1 - wer) * n_ref))
                    add(i.plugin_name, truth.name, {"transcription": Counts(tp=right, fn=n_ref - right)})

    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    results: dict[str, Any] = {}
    for i in infos:
        name = i.plugin_name
        if name in failed or not counts[name]:
            if name not in failed:
                skipped[name] = "the truth folder labels none of its capabilities"
            continue
        feats = {
            f: {"score": round(c.f1, 4), "tp": c.tp, "fp": c.fp, "fn": c.fn, "videos": videos[name][f]}
            for f, c in sorted(counts[name].items())
        }
        if "transcription" in feats:  # words right of the reference's words; no false positives defined
            t = feats["transcription"]
            t["score"] = round(t["tp"] / max(1, t["tp"] + t["fn"]), 4)
        results[name] = {
            "plugin_version": i.plugin_version,
            "measured_at": now,
            "truth": str(Path(truth_dir).expanduser().resolve()),
            "videos": len(per_video[name]),
            "features": feats,
            "per_video": per_video[name],
        }
    path = write_measured(results) if store and results else None
    return {
        "truth": str(Path(truth_dir).expanduser().resolve()),
        "videos": [t.name for t in truths],
        "plugins": results,
        "failed": failed,
        "skipped": skipped,
        "stored_in": str(path) if path else None,
    }


def _groups(temporal: list[Any]) -> list[list[Any]]:
    """The default plugins among ``temporal``, then the rest: one ingest each."""
    from vidintel.resources.analysis import DEFAULT_TEMPORAL

    default = [i for i in temporal if i.plugin_name in DEFAULT_TEMPORAL]
    rest = [i for i in temporal if i.plugin_name not in DEFAULT_TEMPORAL]
    return [g for g in (default, rest) if g]


def _ingest(truth: VideoTruth, project: str, names: list[str]) -> dict[str, Any]:
    from vidintel_pipeline.cli import load_memory
    from vidintel_pipeline.runtime.in_process import ingest

    video_id = truth.name.replace(".", "_")
    info = ingest(
        str(truth.video),
        project,
        video_id,
        quiet=True,
        resources_config={"temporal_plugins": {"config": {"plugins": names}}},
    )
    return load_memory(info["project_id"], info["video_id"])


def _transcribe(registry: Any, name: str, truth: VideoTruth) -> str:
    from vidintel_pipeline.media.audio import extract_audio
    from vidintel_pipeline.plugin_api.contracts import TranscriptionConfig

    with tempfile.TemporaryDirectory(prefix="vidintel-bench-") as tmp:
        wav = extract_audio(truth.video, Path(tmp) / "audio.wav")
        result = registry.get_plugin(name).transcribe_sync(str(wav), TranscriptionConfig())
    return result.text
