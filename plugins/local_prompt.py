"""Moments matching a text prompt, found in what the other plugins saw and heard: ``custom_prompt`` markers.

Given ``prompt`` (the run's ``temporal_plugins.prompt``), every piece of evidence about the video -- each
transcript segment, each text read in the picture (``text_in_video``), each detector label (faces,
technical cues, provider labels) -- is compared with the prompt by meaning, with the same sentence-
embedding model as search (all-MiniLM-L6-v2, see :mod:`vidintel_pipeline.models.embeddings`). Evidence at least
``min_similarity`` close is a match; overlapping matches form one moment, whose marker spans them and
lists every piece of evidence, best first (``matched``/``source`` name the best); evidence that contains
every word of the prompt counts as a match whatever its similarity. Transcript segments are split into
sentences (by their word timestamps), so each sentence is judged on its own. The marker says what matched and
where it came from, so a user can see why.

This plugin reads results, not pixels (``uses_results``): it runs after the other temporal plugins and
the transcript. Looking at the pixels for a prompt is what the VLM plugin (``nvidia_vila``) is for.
"""

from __future__ import annotations

import asyncio
import re

from vidintel_pipeline.plugin_api.contracts import (
    AnalysisConfig,
    BaseTemporalPlugin,
    ChunkInfo,
    PluginError,
    PluginInfo,
    PluginOptions,
    TemporalMarker,
)

# labels that say nothing a prompt could match
_SKIP_TYPES = {"shot_boundary", "scene_change", "custom_prompt"}


def _sentences(transcript) -> list[tuple[float, float, str]]:
    """Transcript sentences with their times: a segment often holds several, and one off-topic sentence
    dilutes the meaning of the others. Needs word timestamps; without them the segment stays whole."""
    out = []
    for seg in transcript.segments:
        if not seg.words:
            if seg.text.strip():
                out.append((seg.start_s, seg.end_s, seg.text.strip()))
            continue
        cur: list = []
        for w in seg.words:
            cur.append(w)
            if w.word.strip().endswith((".", "?", "!")):
                out.append((cur[0].start_s, cur[-1].end_s, " ".join(x.word.strip() for x in cur)))
                cur = []
        if cur:
            out.append((cur[0].start_s, cur[-1].end_s, " ".join(x.word.strip() for x in cur)))
    return out


class PromptOptions(PluginOptions):
    min_similarity: float = 0.35  # cosine; with MiniLM unrelated text scores about 0-0.2, paraphrases 0.4-0.8
    max_matches: int = 50


class LocalPromptPlugin(BaseTemporalPlugin):
    Options = PromptOptions
    options: PromptOptions  # the instance's validated options (built by the base class from Options)

    def get_plugin_info(self) -> PluginInfo:
        return PluginInfo(
            plugin_name="local_prompt",
            plugin_version="1.0.0",
            supported_events=["custom_prompt"],
            uses_results=True,
            accuracy={"custom_prompt": 0.8},
            accuracy_source="tests/outputs/test_search_exports.py: a paraphrased prompt finds the spoken sentence "
            "and the on-screen title",
            description="Matches a text prompt against the transcript, on-screen text and detector labels "
            "by meaning (MiniLM).",
        )

    async def detect_markers(self, chunk: ChunkInfo, config: AnalysisConfig) -> list[TemporalMarker]:
        prompt = (config.prompt or "").strip()
        if not prompt:
            return []
        return await asyncio.to_thread(self._match, prompt, chunk)

    def _match(self, prompt: str, chunk: ChunkInfo) -> list[TemporalMarker]:
        from vidintel_pipeline.models.embeddings import ModelMissing, default_embedder

        evidence = []  # (start, end, text, source)
        if chunk.transcript is not None:
            evidence += [(a, b, text, "transcript") for a, b, text in _sentences(chunk.transcript)]
        for m in chunk.markers:
            if m.type not in _SKIP_TYPES and m.label.strip():
                evidence.append((m.start_s, m.end_s, m.label.replace("_", " ").strip(), m.type))
        if not evidence:
            return []
        try:
            embedder = default_embedder()
        except ModelMissing as exc:
            raise PluginError(str(exc), plugin="local_prompt") from exc
        vecs = embedder.encode([prompt] + [e[2] for e in evidence])
        sims = vecs[1:] @ vecs[0]
        words = set(re.findall(r"\w+", prompt.lower()))
        hits = []
        for (start, end, text, source), sim in zip(evidence, sims, strict=False):
            literal = bool(words) and words <= set(re.findall(r"\w+", text.lower()))
            score = max(float(sim), 0.9 if literal else 0.0)
            if score >= self.options.min_similarity:
                hits.append((score, start, end, text, source, float(sim)))
        # overlapping evidence is one moment: a title on screen while the sentence is spoken
        moments: list[dict] = []
        for score, a, b, text, source, sim in sorted(hits, key=lambda h: (h[1], h[2])):
            if moments and a <= moments[-1]["end"]:
                moments[-1]["end"] = max(moments[-1]["end"], b)
            else:
                moments.append({"start": a, "end": b, "evidence": []})
            moments[-1]["evidence"].append(
                {"text": text, "source": source, "similarity": round(sim, 3), "score": score}
            )
        moments.sort(key=lambda m: -max(e["score"] for e in m["evidence"]))
        out = []
        for moment in moments[: self.options.max_matches]:
            ev = sorted(moment["evidence"], key=lambda e: -e["score"])
            out.append(
                TemporalMarker(
                    type="custom_prompt",
                    start_s=round(max(chunk.start_s, moment["start"]), 6),
                    end_s=round(min(chunk.end_s, max(moment["end"], moment["start"])), 6),
                    label=prompt,
                    confidence=round(min(1.0, ev[0]["score"]), 3),
                    plugin="local_prompt",
                    attributes={
                        "matched": ev[0]["text"],
                        "source": ev[0]["source"],
                        "evidence": [{k: v for k, v in e.items() if k != "score"} for e in ev],
                    },
                )
            )
        return out
