"""Amazon Transcribe batch jobs: timed words, speaker labels, language identification, custom vocabulary.

* The audio must be in S3: on S3 storage it already is (``config.audio_uri``); otherwise it is uploaded once,
  named by content, under the video's prefix in ``staging_bucket`` (or ``S3_BUCKET``).
* The job name is derived from the audio object and the settings. Before starting, the plugin asks for that
  job: a ``COMPLETED`` one is read back (no second bill), a running one is awaited, a ``FAILED`` one is
  deleted and started again. Two runs racing on one name meet on ``ConflictException`` and share the job.
* The transcript JSON is written by Transcribe to ``transcripts/aws_transcribe/<job>.json`` under the video's
  own prefix (``OutputBucketName``/``OutputKey``) and read back from there.
* Words keep Transcribe's confidence and ``speaker_label``; punctuation joins the word before it; segments are
  Transcribe's ``audio_segments`` when present, else sentences split at end punctuation, speaker changes
  and pauses.

Cost: per second of audio with a 15 s minimum per job (``pricebook.json``). A custom vocabulary is used by
name (``vocabulary_name``): create it once in your account; Transcribe cannot take ad-hoc terms per job.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from pydantic import Field

from vidintel_pipeline.plugin_api.cloud import (
    aws_client,
    aws_error,
    in_thread,
    job_name,
    poll,
    rate_limiter,
    stage_in_s3,
)
from vidintel_pipeline.plugin_api.contracts import (
    BaseTranscriptionPlugin,
    PluginError,
    PluginInfo,
    PluginOptions,
    TranscriptionConfig,
    TranscriptionResult,
    TranscriptSegment,
    Word,
)
from vidintel_pipeline.storage.layout import VideoRef

NAME = "aws_transcribe"
SENTENCE_END = (".", "?", "!")


class AWSTranscribePlugin(BaseTranscriptionPlugin):
    options: Options  # the instance's validated options (built by the base class)

    class Options(PluginOptions):
        region: Optional[str] = Field(default=None, description="Empty: AWS_REGION / AWS_DEFAULT_REGION.")
        endpoint_url: Optional[str] = Field(default=None, description="Empty: AWS_ENDPOINT_URL_TRANSCRIBE or AWS's.")
        staging_bucket: Optional[str] = Field(
            default=None, description="Where local audio is uploaded; empty: S3_BUCKET."
        )
        speaker_labels: bool = Field(default=True, description="Diarization: label each word with its speaker.")
        max_speakers: int = Field(default=10, ge=2, le=30)
        language_options: list[str] = Field(
            default_factory=list, description="Candidates for language identification, e.g. en-US, de-DE."
        )
        vocabulary_name: Optional[str] = Field(
            default=None, description="A custom vocabulary already created in the account."
        )
        requests_per_second: float = Field(default=5.0, gt=0)
        poll_first_s: float = Field(default=5.0, ge=0)
        poll_max_s: float = Field(default=30.0, gt=0)
        job_timeout_s: float = Field(default=4 * 3600.0, gt=0)
        pause_split_s: float = Field(default=1.0, gt=0, description="A pause this long starts a new segment.")

    def get_plugin_info(self) -> PluginInfo:
        return PluginInfo(
            plugin_name=NAME,
            plugin_version="1.0.0",
            kind="transcription",
            requires_s3=True,
            supported_events=[
                "transcription",
                "word_timestamps",
                "speaker_diarization",
                "language_detection",
                "custom_vocabulary",
            ],
            cost_per_minute=0.024,
            max_concurrency=10,
            description="Amazon Transcribe batch jobs.",
        )

    async def transcribe(self, audio_path: str, config: TranscriptionConfig) -> TranscriptionResult:
        if not (config.audio_uri or "").startswith("s3://") and not os.path.isfile(audio_path):
            raise PluginError(f"{audio_path}: no such file", plugin=NAME)
        ref = VideoRef(config.project_id or "adhoc", config.video_id or "audio")
        o = self.options
        client = aws_client("transcribe", region=o.region, endpoint_url=o.endpoint_url)
        s3 = aws_client("s3", region=o.region)
        limiter = rate_limiter(
            f"transcribe:{client.meta.region_name}:{client.meta.endpoint_url}", o.requests_per_second, 2
        )
        bucket, key = await in_thread(
            stage_in_s3,
            local_path=audio_path,
            uri=config.audio_uri,
            bucket=o.staging_bucket,
            ref=ref,
            folder="chunks",
            plugin=NAME,
            client=s3,
        )

        async def call(op: str, **kw: Any) -> dict[str, Any]:
            await limiter.acquire()
            try:
                return await in_thread(getattr(client, op), **kw)
            except Exception as exc:  # noqa: BLE001
                raise aws_error(exc, plugin=NAME, what=f"{op} ({kw.get('TranscriptionJobName', '')})") from exc

        settings: dict[str, Any] = {}
        if o.speaker_labels or config.diarization:
            settings.update(ShowSpeakerLabels=True, MaxSpeakerLabels=o.max_speakers)
        if o.vocabulary_name:
            settings["VocabularyName"] = o.vocabulary_name
        lang: dict[str, Any] = (
            {"LanguageCode": _locale(config.language)} if config.language else {"IdentifyLanguage": True}
        )
        if not config.language and o.language_options:
            lang["LanguageOptions"] = o.language_options
        name = job_name(
            f"vidintel-{ref.project_id}-{ref.video_id}",
            bucket,
            key,
            settings,
            lang,
            self.info.plugin_version,
            max_len=200,
        )
        out_key = ref.key("transcripts", f"aws_transcribe/{name}.json")

        job = await self._existing(call, name)
        if job is None or job["TranscriptionJobStatus"] == "FAILED":
            if job is not None:
                await call("delete_transcription_job", TranscriptionJobName=name)
            try:
                job = (
                    await call(
                        "start_transcription_job",
                        TranscriptionJobName=name,
                        Media={"MediaFileUri": f"s3://{bucket}/{key}"},
                        MediaFormat="wav",
                        OutputBucketName=bucket,
                        OutputKey=out_key,
                        **({"Settings": settings} if settings else {}),
                        Tags=[{"Key": "vidintel:project", "Value": ref.project_id}],
                        **lang,
                    )
                )["TranscriptionJob"]
            except PluginError as exc:
                if "ConflictException" not in str(exc):
                    raise
                job = await self._existing(call, name)  # another run started the same job: share it

        async def done() -> Optional[dict]:
            j = (await call("get_transcription_job", TranscriptionJobName=name))["TranscriptionJob"]
            return j if j["TranscriptionJobStatus"] in ("COMPLETED", "FAILED") else None

        if job is None or job["TranscriptionJobStatus"] not in ("COMPLETED", "FAILED"):
            job = await poll(
                done,
                what=f"transcription job {name}",
                plugin=NAME,
                first_s=o.poll_first_s,
                max_s=o.poll_max_s,
                deadline_s=o.job_timeout_s,
            )
        assert job is not None  # the one found or started, or the one poll() waited for
        if job["TranscriptionJobStatus"] == "FAILED":
            raise PluginError(
                f"transcription job {name} FAILED: {job.get('FailureReason', 'no reason given')}", plugin=NAME
            )
        try:
            body = await in_thread(lambda: s3.get_object(Bucket=bucket, Key=out_key)["Body"].read())
        except Exception as exc:  # noqa: BLE001
            raise aws_error(exc, plugin=NAME, what=f"reading the transcript s3://{bucket}/{out_key}") from exc
        return self.parse(json.loads(body), job)

    @staticmethod
    async def _existing(call, name: str) -> Optional[dict]:
        try:
            return (await call("get_transcription_job", TranscriptionJobName=name))["TranscriptionJob"]
        except PluginError as exc:
            if "couldn't be found" in str(exc) or "NotFoundException" in str(exc):
                return None
            raise

    def parse(self, doc: dict[str, Any], job: dict[str, Any]) -> TranscriptionResult:
        """Transcribe's output JSON as our transcript."""
        results = doc.get("results", {})
        words: list[Word] = []
        by_id: dict[int, int] = {}
        for i, item in enumerate(results.get("items", [])):
            alt = (item.get("alternatives") or [{}])[0]
            text = alt.get("content", "")
            if item.get("type") == "punctuation":
                if words:
                    words[-1].word += text
                continue
            by_id[int(item.get("id", i))] = len(words)
            words.append(
                Word(
                    start_s=float(item["start_time"]),
                    end_s=float(item["end_time"]),
                    word=text,
                    probability=min(1.0, max(0.0, float(alt.get("confidence", 1.0)))),
                    speaker=item.get("speaker_label"),
                )
            )
        segments = self._segments(results.get("audio_segments"), words, by_id)
        locale = results.get("language_code") or job.get("LanguageCode")
        score = job.get("IdentifiedLanguageScore")
        for cand in results.get("language_identification", []) or []:
            if cand.get("code") == locale:
                score = float(cand.get("score", score or 0))
        duration = max([w.end_s for w in words] or [0.0])
        # beyond the contract's fields: TranscriptionResult keeps extra fields (extra="allow")
        extra: dict[str, Any] = {
            "language_locale": locale,
            "job_name": doc.get("jobName", job.get("TranscriptionJobName")),
        }
        return TranscriptionResult(
            language=locale.split("-")[0].lower() if locale else None,
            language_probability=score,
            duration_s=duration,
            segments=segments,
            plugin=NAME,
            model="amazon-transcribe",
            **extra,
        )

    def _segments(
        self, audio_segments: Optional[list], words: list[Word], by_id: dict[int, int]
    ) -> list[TranscriptSegment]:
        if audio_segments:
            segments: list[TranscriptSegment] = []
            for seg in audio_segments:
                idx = [by_id[int(i)] for i in seg.get("items", []) if int(i) in by_id]
                ws = [words[i] for i in idx]
                segments.append(
                    TranscriptSegment(
                        start_s=float(seg["start_time"]),
                        end_s=float(seg["end_time"]),
                        text=seg.get("transcript", " ".join(w.word for w in ws)),
                        speaker=seg.get("speaker_label"),
                        words=ws,
                    )
                )
            return segments
        out: list[list[Word]] = []
        cur: list[Word] = []
        for w in words:
            if cur and (w.speaker != cur[-1].speaker or w.start_s - cur[-1].end_s >= self.options.pause_split_s):
                out.append(cur)
                cur = []
            cur.append(w)
            if w.word.endswith(SENTENCE_END):
                out.append(cur)
                cur = []
        if cur:
            out.append(cur)
        return [
            TranscriptSegment(
                start_s=ws[0].start_s,
                end_s=ws[-1].end_s,
                text=" ".join(w.word for w in ws),
                speaker=ws[0].speaker,
                words=ws,
            )
            for ws in out
        ]


def _locale(language: str) -> str:
    """Transcribe wants locales (en-US); accept ISO codes too."""
    if "-" in language:
        return language
    return {
        "en": "en-US",
        "de": "de-DE",
        "fr": "fr-FR",
        "es": "es-US",
        "it": "it-IT",
        "pt": "pt-BR",
        "ja": "ja-JP",
        "ko": "ko-KR",
        "zh": "zh-CN",
        "nl": "nl-NL",
        "hi": "hi-IN",
        "ar": "ar-SA",
    }.get(language, language)
