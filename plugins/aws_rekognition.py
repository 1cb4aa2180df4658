"""AWS Rekognition Video: shot boundaries, technical cues and labels from stored-video jobs.

How a chunk is analysed:

1. The chunk must be an S3 object. On S3 storage it already is (``chunk.uri``); on local storage it is
   uploaded once, named by content, under the video's own prefix in ``staging_bucket`` (or ``S3_BUCKET``).
2. ``StartSegmentDetection`` (shots, technical cues) and ``StartLabelDetection`` (objects, aggregated into
   segments with start and end) start together. Their ``ClientRequestToken`` is derived from the object and
   the settings, so a retried run gets the job it already started (and paid for) back instead of a new one.
3. ``Get*`` is polled with backoff until the job leaves ``IN_PROGRESS`` (an SNS topic may be configured too),
   and every page (``NextToken``) is read: an hour of labels spans many pages.
4. Throttling and job-limit errors (``ThrottlingException``, ``LimitExceededException``, ...) are retried by
   the orchestrator's policy, then raised as :class:`RateLimitError`; anything else is a
   :class:`PluginError`, so a configured fallback (e.g. ``local_shots``) takes over.

Times come back relative to the chunk file and are shifted onto the source timeline. Credentials come from
the standard AWS environment (keys, profile or role); the endpoint from ``AWS_ENDPOINT_URL_REKOGNITION``.
Cost: AWS bills each segment type and label detection per minute of video (see ``pricebook.json``).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Literal, Optional

from pydantic import Field

from vidintel_pipeline.costs.pricing import rule_for
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
    AnalysisConfig,
    BaseTemporalPlugin,
    ChunkInfo,
    PluginError,
    PluginInfo,
    PluginOptions,
    TemporalMarker,
)
from vidintel_pipeline.storage.layout import VideoRef

NAME = "aws_rekognition"
Feature = Literal["shots", "technical_cues", "labels"]
ALL_FEATURES: tuple[Feature, ...] = ("shots", "technical_cues", "labels")
PRICED_AS = {"shots": "shot_detection", "technical_cues": "technical_cue", "labels": "label_detection"}
CUE_LABELS = {  # Rekognition's TechnicalCueSegment.Type -> our technical_cue labels (local plugins share the first two)
    "BlackFrames": "black_frames",
    "ColorBars": "color_bars",
    "EndCredits": "end_credits",
    "OpeningCredits": "opening_credits",
    "StudioLogo": "studio_logo",
    "Slate": "slate",
}


class AWSRekognitionPlugin(BaseTemporalPlugin):
    options: Options  # the instance's validated options (built by the base class)

    class Options(PluginOptions):
        features: list[Feature] = Field(default_factory=lambda: list(ALL_FEATURES), min_length=1)
        min_confidence: float = Field(
            default=50.0, ge=0, le=100, description="Rekognition's confidence floor, percent."
        )
        region: Optional[str] = Field(default=None, description="Empty: AWS_REGION / AWS_DEFAULT_REGION.")
        endpoint_url: Optional[str] = Field(default=None, description="Empty: AWS_ENDPOINT_URL_REKOGNITION or AWS's.")
        staging_bucket: Optional[str] = Field(
            default=None, description="Where local chunks are uploaded; empty: S3_BUCKET."
        )
        max_chunk_s: float = Field(default=600.0, gt=0, description="Longer videos are sent chunk by chunk.")
        max_jobs: int = Field(default=20, ge=1, description="Concurrent jobs (Rekognition's default quota is 20).")
        requests_per_second: float = Field(default=5.0, gt=0, description="API calls per second, shared by all chunks.")
        sns_topic_arn: Optional[str] = None
        sns_role_arn: Optional[str] = None
        poll_first_s: float = Field(default=5.0, ge=0)
        poll_max_s: float = Field(default=30.0, gt=0)
        job_timeout_s: float = Field(default=3600.0, gt=0)

    def get_plugin_info(self) -> PluginInfo:
        events = []
        if "shots" in self.options.features:
            events += ["shot_detection", "shot_boundary"]
        if "technical_cues" in self.options.features:
            events += [
                "technical_cue",
                "black_frames",
                "color_bars",
                "end_credits",
                "opening_credits",
                "studio_logo",
                "slate",
            ]
        if "labels" in self.options.features:
            events += ["object_appearance", "label_detection"]
        return PluginInfo(
            plugin_name=NAME,
            plugin_version="1.0.0",
            supported_events=events,
            requires_s3=True,
            max_chunk_duration=self.options.max_chunk_s,
            cost_per_minute=self._rate(),
            max_concurrency=self.options.max_jobs,
            description="AWS Rekognition Video segment and label detection (stored-video jobs).",
        )

    def _rate(self) -> float:
        rule = rule_for(self)
        return rule.rate(**self.billing_choice()) if rule else 0.0

    def billing_choice(self) -> dict[str, Any]:
        return {"features": [PRICED_AS[f] for f in self.options.features]}

    # ------------------------------------------------------------------------------------------------
    async def detect_markers(self, chunk: ChunkInfo, config: AnalysisConfig) -> list[TemporalMarker]:
        ref = VideoRef(chunk.project_id, chunk.video_id)
        if not (chunk.uri or "").startswith("s3://") and not os.path.isfile(chunk.path):
            raise PluginError(f"{chunk.path}: no such file", plugin=NAME)
        o = self.options
        client = aws_client("rekognition", region=o.region, endpoint_url=o.endpoint_url)
        region = client.meta.region_name
        bucket_ = rate_limiter(f"rekognition:{region}:{client.meta.endpoint_url}", o.requests_per_second, 2)
        bucket, key = await in_thread(
            stage_in_s3,
            local_path=chunk.path,
            uri=chunk.uri,
            bucket=o.staging_bucket,
            ref=ref,
            folder="chunks",
            plugin=NAME,
        )
        video = {"S3Object": {"Bucket": bucket, "Name": key}}
        extra: dict[str, Any] = {"JobTag": ref.project_id[:256]}
        if o.sns_topic_arn and o.sns_role_arn:
            extra["NotificationChannel"] = {"SNSTopicArn": o.sns_topic_arn, "RoleArn": o.sns_role_arn}

        async def call(op: str, what: str, **kw: Any) -> dict[str, Any]:
            await bucket_.acquire()
            try:
                return await in_thread(getattr(client, op), **kw)
            except Exception as exc:  # noqa: BLE001
                raise aws_error(exc, plugin=NAME, what=f"{what} for s3://{bucket}/{key}") from exc

        jobs = []
        segment_types = [t for f, t in (("shots", "SHOT"), ("technical_cues", "TECHNICAL_CUE")) if f in o.features]
        if segment_types:
            jobs.append(self._segments(call, video, extra, segment_types, key))
        if "labels" in o.features:
            jobs.append(self._labels(call, video, extra, key))
        results = await asyncio.gather(*jobs)
        found = [self._marker(m, chunk) for part in results for m in part]
        markers = [m for m in found if m is not None and m.end_s >= chunk.start_s]
        markers.sort(key=lambda m: (m.start_s, m.end_s, m.label))
        return markers

    async def _job(self, call, start_op: str, get_op: str, what: str, start_kw: dict, get_kw: dict) -> list[dict]:
        o = self.options
        job_id = (await call(start_op, f"{what}: start", **start_kw))["JobId"]

        async def status() -> Optional[dict]:
            page = await call(get_op, f"{what}: job {job_id}", JobId=job_id, MaxResults=1000, **get_kw)
            if page.get("JobStatus") == "IN_PROGRESS":
                return None
            return page

        first = await poll(
            status,
            what=f"{what} job {job_id}",
            plugin=NAME,
            first_s=o.poll_first_s,
            max_s=o.poll_max_s,
            deadline_s=o.job_timeout_s,
        )
        if first.get("JobStatus") != "SUCCEEDED":
            raise PluginError(
                f"{what} job {job_id} {first.get('JobStatus')}: {first.get('StatusMessage', 'no reason given')}",
                plugin=NAME,
            )
        pages = [first]
        while token := pages[-1].get("NextToken"):
            pages.append(
                await call(get_op, f"{what}: job {job_id}", JobId=job_id, MaxResults=1000, NextToken=token, **get_kw)
            )
        return pages

    async def _segments(self, call, video, extra, types, key) -> list[tuple[str, dict]]:
        conf = max(50.0, self.options.min_confidence)  # Rekognition's floor for segments is 50
        filters: dict[str, Any] = {}
        if "SHOT" in types:
            filters["ShotFilter"] = {"MinSegmentConfidence": conf}
        if "TECHNICAL_CUE" in types:
            filters["TechnicalCueFilter"] = {"MinSegmentConfidence": conf}
        token = job_name("seg", key, types, conf, self.info.plugin_version)
        pages = await self._job(
            call,
            "start_segment_detection",
            "get_segment_detection",
            "segment detection",
            dict(Video=video, SegmentTypes=types, Filters=filters, ClientRequestToken=token, **extra),
            {},
        )
        return [("segment", s) for p in pages for s in p.get("Segments", [])]

    async def _labels(self, call, video, extra, key) -> list[tuple[str, dict]]:
        conf = self.options.min_confidence
        token = job_name("lbl", key, conf, self.info.plugin_version)
        pages = await self._job(
            call,
            "start_label_detection",
            "get_label_detection",
            "label detection",
            dict(Video=video, MinConfidence=conf, ClientRequestToken=token, **extra),
            {"AggregateBy": "SEGMENTS", "SortBy": "TIMESTAMP"},
        )
        return [("label", lab) for p in pages for lab in p.get("Labels", [])]

    @staticmethod
    def _marker(item: tuple[str, dict], chunk: ChunkInfo) -> Optional[TemporalMarker]:
        kind, d = item
        off = chunk.start_s

        def t(ms: Any) -> float:
            return round(min(chunk.end_s, off + float(ms) / 1000.0), 3)

        if kind == "segment" and d.get("Type") == "SHOT":
            if float(d.get("StartTimestampMillis", 0)) <= 0:
                return None  # the chunk's first shot starts where the chunk does: not a cut
            shot = d.get("ShotSegment", {})
            start = t(d["StartTimestampMillis"])
            return TemporalMarker(
                type="shot_boundary",
                start_s=start,
                end_s=start,
                label="cut",
                confidence=round(shot.get("Confidence", 100.0) / 100.0, 4),
                plugin=NAME,
                attributes={"shot_index": shot.get("Index"), "smpte": d.get("StartTimecodeSMPTE")},
            )
        if kind == "segment" and d.get("Type") == "TECHNICAL_CUE":
            cue = d.get("TechnicalCueSegment", {})
            label = CUE_LABELS.get(cue.get("Type", ""))
            if label is None:  # "Content" is ordinary programme, not a cue
                return None
            return TemporalMarker(
                type="technical_cue",
                start_s=t(d["StartTimestampMillis"]),
                end_s=t(d["EndTimestampMillis"]),
                label=label,
                confidence=round(cue.get("Confidence", 100.0) / 100.0, 4),
                plugin=NAME,
            )
        if kind == "label":
            lab = d.get("Label", {})
            start_ms = d.get("StartTimestampMillis", d.get("Timestamp", 0))
            end_ms = d.get("EndTimestampMillis", start_ms)
            return TemporalMarker(
                type="object_appearance",
                start_s=t(start_ms),
                end_s=t(end_ms),
                label=lab.get("Name", "object").lower(),
                confidence=round(lab.get("Confidence", 100.0) / 100.0, 4),
                plugin=NAME,
                attributes={
                    "parents": [p["Name"] for p in lab.get("Parents", [])],
                    "categories": [c["Name"] for c in lab.get("Categories", [])],
                    "instances": len(lab.get("Instances", [])),
                },
            )
        return None
