"""What GPU work shares: picking the torch device, and the tags that route GPU work to GPU machines.

Routing happens at two levels. Whole runs: a run tagged ``vidintel/compute: gpu`` goes to the GPU run
launcher (:mod:`vidintel_pipeline.runtime.launchers`). Steps: a GPU asset carries the ``gpu`` concurrency pool
and the op tags the production step executors read (``dagster-k8s/config`` for ``k8s_job_executor``,
``ecs/*`` for the ECS executor, ``dagster-celery/queue`` for Celery), so a deployment can cap GPU work
and place each step on a GPU node, whichever executor it runs.
"""

from __future__ import annotations

from typing import Any

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
