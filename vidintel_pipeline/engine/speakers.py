"""Merging speaker turns (from a diarization plugin) into a transcript's words and segments.

Each word takes the speaker whose turn overlaps it most, or the nearest turn within ``max_gap_s`` (word
timestamps and turn edges disagree by a few hundred milliseconds). A segment whose words change speaker
is split there, so subtitles and search moments never mix two voices. Speakers are renamed ``spk_0``,
``spk_1``, ... in order of first appearance, the names AWS Transcribe uses, so outputs look alike
whichever plugin diarized.
"""

from __future__ import annotations

from typing import Optional

from vidintel_pipeline.plugin_api.contracts import SpeakerTurn, TranscriptionResult, TranscriptSegment


def speaker_at(turns: list[SpeakerTurn], start: float, end: float, max_gap_s: float = 0.5) -> Optional[str]:
    best, best_overlap = None, 0.0
    for t in turns:
        overlap = min(end, t.end_s) - max(start, t.start_s)
        if overlap > best_overlap:
            best, best_overlap = t.speaker, overlap
    if best is not None:
        return best
    gaps = [(max(t.start_s - end, start - t.end_s), t.speaker) for t in turns]
    near = min(gaps, default=None)
    return near[1] if near and near[0] <= max_gap_s else None


def assign_speakers(result: TranscriptionResult, turns: list[SpeakerTurn]) -> TranscriptionResult:
    """A copy of ``result`` with ``speaker`` on every word and segment the turns cover."""
    order: dict[str, str] = {}
    for t in sorted(turns, key=lambda t: t.start_s):
        order.setdefault(t.speaker, f"spk_{len(order)}")
    turns = [t.model_copy(update={"speaker": order[t.speaker]}) for t in turns]
    segments: list[TranscriptSegment] = []
    for seg in result.segments:
        if not seg.words:
            segments.append(seg.model_copy(update={"speaker": speaker_at(turns, seg.start_s, seg.end_s)}))
            continue
        words = [w.model_copy(update={"speaker": speaker_at(turns, w.start_s, w.end_s)}) for w in seg.words]
        if len({w.speaker for w in words}) == 1:
            segments.append(seg.model_copy(update={"speaker": words[0].speaker, "words": words}))
            continue
        run = [words[0]]
        for w in words[1:] + [None]:
            if w is not None and w.speaker == run[-1].speaker:
                run.append(w)
                continue
            segments.append(
                TranscriptSegment(
                    start_s=run[0].start_s,
                    end_s=run[-1].end_s,
                    text=" ".join(x.word for x in run),
                    speaker=run[0].speaker,
                    words=run,
                )
            )
            if w is not None:
                run = [w]
    return result.model_copy(update={"segments": segments})
