"""Code versions of the analysis assets, derived from the plugins they run by default and those plugins' versions.

A plugin upgrade (its ``plugin_version``) or a change of the default set changes the asset's ``code_version``, so
Dagster marks every partition analysed before as unsynced (and everything downstream of it): ``vidintel stale P``
lists them and ``--run`` re-ingests exactly those. ``CORE_VERSION`` is bumped when the core's own handling of
the results (merging, chunking, keyframes) changes what an asset holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import dagster as dg

CORE_VERSION = "1"


def plugins_code_version(names: Iterable[str], reg: Any = None) -> str:
    """``core<N>-<hash of name@version, ...>``; a plugin that is not installed counts as ``name@missing``."""
    from vidintel_pipeline.plugin_api.registry import PluginRegistry

    reg = reg or PluginRegistry.default()
    parts = sorted(f"{n}@{reg.entries[n].info.plugin_version if n in reg.entries else 'missing'}" for n in names)
    return f"core{CORE_VERSION}-" + hashlib.sha256(",".join(parts).encode()).hexdigest()[:12]


def default_versions() -> dict[str, str]:
    """The code version of each analysis asset under the resources' default plugin selection."""
    from vidintel.resources.analysis import DEFAULT_TEMPORAL, GpuWorkResource, TranscriptionResource
    from vidintel_pipeline.plugin_api.registry import PluginRegistry

    reg = PluginRegistry.default()
    derived = [n for n in DEFAULT_TEMPORAL if n in reg.entries and reg.entries[n].info.uses_results]
    media = [n for n in DEFAULT_TEMPORAL if n not in derived]
    gpu = GpuWorkResource()
    return {  # one registry for all four: this runs whenever the definitions are imported
        "temporal_markers": plugins_code_version(media, reg),
        "transcript": plugins_code_version([TranscriptionResource().plugin], reg),
        "derived_markers": plugins_code_version(derived, reg),
        "gpu_analysis": plugins_code_version([*gpu.temporal_plugins, gpu.diarizer, "openai_whisper"], reg),
    }


VERSIONS = default_versions()


def stale_videos(instance: dg.DagsterInstance, project_id: str) -> list[dict[str, Any]]:
    """The project's videos whose latest analysis ran under another code version than the current defaults'
    (or never ran): ``{video_id, partition, assets: {asset: recorded version or None}}``."""
    from vidintel_pipeline.defs.partitions import videos_partitions
    from vidintel_pipeline.storage.layout import PARTITION_SEP

    inst = instance
    keys = list(inst.get_dynamic_partitions(videos_partitions.name or "videos"))
    out = []
    for pk in sorted(k for k in keys if k.startswith(project_id + PARTITION_SEP)):
        differs = {}
        for asset in ("temporal_markers", "transcript", "derived_markers"):
            got = inst.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[pk]), limit=1
            ).records
            mat = got[0].asset_materialization if got else None
            recorded = (mat.tags or {}).get("dagster/code_version") if mat else None
            if recorded != VERSIONS[asset]:
                differs[asset] = recorded
        if differs:
            out.append({"video_id": pk.split(PARTITION_SEP, 1)[1], "partition": pk, "assets": differs})
    return out
