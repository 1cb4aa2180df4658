"""The GPU part of a video's analysis: torch models in one asset, so only this step holds a GPU.

``gpu_analysis`` runs the GPU temporal plugins (TransNetV2 by default) and speaker diarization (senko).
It is in the ``ingest_video_gpu`` job, not in ``ingest_video``: runs of that job carry the
``vidintel/compute: gpu`` tag, which the routing run launcher sends to the GPU launcher, and the step
itself sits in the ``gpu`` concurrency pool with the op tags that put it on a GPU node under the k8s,
ECS and Celery executors (:mod:`vidintel_pipeline.runtime.gpu`). ``memory`` does not depend on it, so
``ingest_video`` stays closed under its dependencies; ``memory`` merges what it finds (its markers with the
others, its speakers into the transcript's words and segments), and ``gpu_merge_sensor`` rebuilds memory
after every materialization of this asset. On a machine without a GPU it runs on the CPU, slowly, which
is how CI tests it.
"""

import asyncio
import time
from typing import Any

import dagster as dg

from vidintel.resources import CostControls, GpuWorkResource, VidintelStorage
from vidintel_pipeline.defs.assets.analysis import transcript
from vidintel_pipeline.defs.assets.common import cost_meta, float_meta, link, need_json, record_spend, video_ref
from vidintel_pipeline.defs.assets.ingestion import audio, source_video
from vidintel_pipeline.defs.partitions import videos_partitions
from vidintel_pipeline.defs.versions import VERSIONS
from vidintel_pipeline.engine.cache import ResultCache
from vidintel_pipeline.engine.runner import analyze_video
from vidintel_pipeline.media import MediaError
from vidintel_pipeline.plugin_api.contracts import AnalysisConfig, ChunkInfo, CostSummary, PluginError
from vidintel_pipeline.runtime.gpu import GPU_OP_TAGS, GPU_POOL
from vidintel_pipeline.storage.layout import AUDIO, GPU_MARKERS, PROBE, SPEAKERS


@dg.asset(
    partitions_def=videos_partitions,
    group_name="analysis",
    kinds={"pytorch"},
    deps=[source_video, audio, transcript],
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
    code_version=VERSIONS["gpu_analysis"],
    description="Torch models that belong on a GPU: neural shot boundaries (TransNetV2) and speaker "
    "diarization (senko).",
)
def gpu_analysis(
    context: dg.AssetExecutionContext, storage: VidintelStorage, gpu: GpuWorkResource, costs: CostControls
) -> dg.MaterializeResult:
    ref = video_ref(context)
    store = storage.for_video(ref)[0]
    info = need_json(store, ref.key("metadata", PROBE), "source_video's probe")
    try:
        plugins = gpu.create()
        diarizer = gpu.create_diarizer() if gpu.diarization else None
    except PluginError as exc:
        raise dg.Failure(description=f"Plugin configuration error: {exc}", allow_retries=False) from exc
    source = ChunkInfo(
        project_id=ref.project_id,
        video_id=ref.video_id,
        path=str(store.local_path(info["key"])),
        uri=store.uri(info["key"]),
        start_s=0.0,
        end_s=info["duration_s"],
        fps=info["fps"],
        width=info["width"],
        height=info["height"],
    )
    t0 = time.perf_counter()
    try:
        result = analyze_video(
            source=source,
            chunks=[source],
            plugins=plugins,
            policy=gpu.policy(),
            config=AnalysisConfig(project_id=ref.project_id, video_id=ref.video_id),
            cache=ResultCache(store, ref, enabled=costs.use_cache),
            content_sha256=info["sha256"],
        )
    except MediaError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    for run in result.failed:
        context.log.error(f"plugin {run.plugin} failed: {run.error}")
    runs: list[dict[str, Any]] = [r.as_dict() for r in result.runs]
    cost = dict(result.cost_by_plugin)

    turns = []
    audio_key = ref.key("chunks", AUDIO)
    if diarizer is not None and store.exists(audio_key):
        t1 = time.perf_counter()
        try:
            turns = asyncio.run(diarizer.diarize(str(store.local_path(audio_key))))
            cost[diarizer.name] = diarizer.estimate_cost(info["duration_s"])
            runs.append(
                {
                    "plugin": diarizer.name,
                    "version": diarizer.info.plugin_version,
                    "status": "ok",
                    "seconds": round(time.perf_counter() - t1, 3),
                    "speakers": len({t.speaker for t in turns}),
                }
            )
        except PluginError as exc:  # the markers are still worth keeping
            context.log.error(f"diarization failed: {exc}")
            runs.append(
                {
                    "plugin": diarizer.name,
                    "version": diarizer.info.plugin_version,
                    "status": "failed",
                    "error": str(exc),
                }
            )
    elif diarizer is not None:
        context.log.info("no audio track: no speakers to label")
    if plugins and not any(r["status"] == "ok" for r in runs):
        raise dg.Failure(
            description="every GPU plugin failed: " + "; ".join(f"{r['plugin']}: {r.get('error')}" for r in runs),
            allow_retries=any(r.get("retryable") for r in runs),
        )

    record_spend(costs, context, ref, "gpu_analysis", info["duration_s"], ((n, usd, False) for n, usd in cost.items()))
    summary = CostSummary(total_usd=round(sum(cost.values()), 6), by_plugin=cost).model_dump()
    mk_uri = store.put_json(
        ref.key("metadata", GPU_MARKERS),
        {
            "source_sha256": info["sha256"],
            "markers": [m.model_dump() for m in result.markers],
            "plugins": runs,
            "cost": summary,
        },
    )
    sp_uri = store.put_json(
        ref.key("transcripts", SPEAKERS),
        {
            "source_sha256": info["sha256"],
            "turns": [t.model_dump() for t in turns],
            "plugin": diarizer.name if diarizer else None,
        },
    )
    try:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        device = "none (torch not installed)"
    return dg.MaterializeResult(
        metadata={
            "markers": dg.IntMetadataValue(len(result.markers)),
            "speakers": dg.IntMetadataValue(len({t.speaker for t in turns})),
            "speaker_turns": dg.IntMetadataValue(len(turns)),
            "device": device,
            "plugins": dg.JsonMetadataValue(runs),
            "seconds": float_meta(round(time.perf_counter() - t0, 3)),
            "markers_uri": link(mk_uri),
            "speakers_uri": link(sp_uri),
            "video_seconds": float_meta(info["duration_s"]),
            **cost_meta(cost),
        }
    )
