"""The ``costs`` group: the per-project cost report from the ledger."""

from typing import Any

import dagster as dg

from vidintel.resources import CostControls
from vidintel_pipeline.defs.assets.common import float_meta
from vidintel_pipeline.defs.assets.outputs import memory


@dg.asset(
    group_name="costs",
    kinds={"sqlite"},
    deps=[memory],
    automation_condition=dg.AutomationCondition.eager(),
    description="What every project has spent, per plugin, from the cost ledger (all runs, cached ones at $0).",
)
def project_costs(costs: CostControls) -> dg.MaterializeResult:
    projects = costs.ledger().projects()
    lines = ["| project | videos | total USD | by plugin |", "|---|---|---|---|"]
    for name, p in sorted(projects.items()):
        plugins = ", ".join(f"{k} ${v:.4f}" for k, v in p["by_plugin"].items())
        lines.append(f"| {name} | {p['videos']} | {p['total_usd']:.4f} | {plugins} |")
    meta: dict[str, Any] = {
        "report": dg.MetadataValue.md("\n".join(lines)),
        "projects": dg.JsonMetadataValue(projects),
        "cost/total_usd": float_meta(sum(p["total_usd"] for p in projects.values())),
    }
    for name, p in projects.items():
        meta[f"cost/project/{name}"] = float_meta(p["total_usd"])
    return dg.MaterializeResult(metadata=meta)
