"""What GPU work shares: picking the torch device, and the tags that route GPU work to GPU machines.

Routing happens at two levels. Whole runs: a run tagged ``vidintel/compute: gpu``, or whose selected plugins
include one that declares ``requires_gpu``, goes to the GPU run launcher
(:mod:`vidintel_pipeline.runtime.launchers`); the sensor and the nightly re-scan take the GPU job for the
projects named in ``VIDINTEL_GPU_PROJECTS``. Steps: a GPU asset carries the ``gpu`` concurrency pool
and the op tags the production step executors read (``dagster-k8s/config`` for ``k8s_job_executor``,
``ecs/*`` for the ECS executor, ``dagster-celery/queue`` for Celery), so a deployment can cap GPU work
and place each step on a GPU node, whichever executor it runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Optional

from vidintel_pipeline.plugin_api.contracts import PluginError

COMPUTE_TAG = "vidintel/compute"
GPU_POOL = "gpu"

# step placement for the executors users run in production; harmless for the others
GPU_OP_TAGS: dict[str, Any] = {
    "dagster-k8s/config": {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}},
        "pod_spec_config": {
            "node_selector": {"vidintel/accelerator": "nvidia-gpu"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    },
    "ecs/cpu": "4096",
    "ecs/memory": "16384",
    "ecs/task_overrides": {"resourceRequirements": [{"type": "GPU", "value": "1"}]},
    "dagster-celery/queue": "gpu",
    COMPUTE_TAG: "gpu",
}


def device_of(option: str, plugin: str = "gpu") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without a GPU is a clear error."""
    try:
        import torch
    except ImportError as exc:
        raise PluginError("torch is not installed: pip install 'vidintel[gpu]'", plugin=plugin) from exc
    if option == "cuda" and not torch.cuda.is_available():
        raise PluginError("device 'cuda' asked for, but torch sees no GPU", plugin=plugin)
    return option if option != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")


# routing from requirements -----------------------------------------------------------------------------------
GPU_PROJECTS_ENV = "VIDINTEL_GPU_PROJECTS"  # comma-separated project ids (or *) whose unattended runs are GPU runs
GPU_REASON_TAG = "vidintel/gpu_reason"


def gpu_projects() -> set[str]:
    return {p.strip() for p in os.environ.get(GPU_PROJECTS_ENV, "").split(",") if p.strip()}


def is_gpu_project(project_id: str) -> bool:
    """Whether the sensor and the nightly re-scan ingest ``project_id`` with the GPU job (``VIDINTEL_GPU_PROJECTS``)."""
    chosen = gpu_projects()
    return "*" in chosen or project_id in chosen


def selected_plugins(run_config: Optional[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """The plugin names a per-video run will call (temporal and fallbacks, then transcription and fallbacks),
    from its run config, or the resources' defaults where the config is silent; and the extra plugin folders."""
    from vidintel.resources.analysis import DEFAULT_TEMPORAL

    res = (run_config or {}).get("resources") or {}

    def cfg(key: str) -> dict[str, Any]:
        return ((res.get(key) or {}).get("config")) or {}

    temporal, transcription = cfg("temporal_plugins"), cfg("transcription")
    names = list(temporal.get("plugins") or DEFAULT_TEMPORAL)
    names += [f for fs in (temporal.get("fallbacks") or {}).values() for f in fs]
    if transcription.get("enabled", True):
        names += [transcription.get("plugin") or "faster_whisper", *(transcription.get("fallbacks") or [])]
    paths = [*(temporal.get("plugin_paths") or []), *(transcription.get("plugin_paths") or [])]
    return list(dict.fromkeys(names)), paths


def gpu_plugins_selected(run_config: Optional[Mapping[str, Any]]) -> list[str]:
    """The selected plugins that declare ``requires_gpu`` (unknown names are left to the run to report)."""
    from vidintel_pipeline.plugin_api.registry import PluginRegistry

    names, paths = selected_plugins(run_config)
    reg = PluginRegistry.default(extra_paths=paths)
    return [n for n in names if n in reg.entries and reg.entries[n].info.requires_gpu]


def gpu_reason(tags: Mapping[str, str], run_config: Optional[Mapping[str, Any]]) -> Optional[str]:
    """Why a run is GPU work, or None: its ``vidintel/compute`` tag, or a selected plugin that requires a GPU."""
    if tags.get(COMPUTE_TAG) == "gpu":
        return tags.get(GPU_REASON_TAG) or f"tagged {COMPUTE_TAG}=gpu"
    if tags.get(COMPUTE_TAG):  # an explicit other value (cpu) is the operator's choice
        return None
    needs = gpu_plugins_selected(run_config)
    return f"selected plugin(s) require a GPU: {', '.join(needs)}" if needs else None
