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
    meta: dict[str, Any] = {
        "report": dg.MetadataValue.table(
            records=[
                dg.TableRecord({"project": name, "videos": p["videos"], "total_usd": round(p["total_usd"], 6)})
                for name, p in sorted(projects.items())
            ],
            schema=dg.TableSchema(
                columns=[
                    dg.TableColumn("project", "string"),
                    dg.TableColumn("videos", "int"),
                    dg.TableColumn("total_usd", "float"),
                ]
            ),
        ),
        "by_plugin": dg.MetadataValue.table(
            records=[
                dg.TableRecord({"project": name, "plugin": plugin, "cost_usd": round(usd, 6)})
                for name, p in sorted(projects.items())
                for plugin, usd in sorted(p["by_plugin"].items(), key=lambda kv: -kv[1])
            ],
            schema=dg.TableSchema(
                columns=[
                    dg.TableColumn("project", "string"),
                    dg.TableColumn("plugin", "string"),
                    dg.TableColumn("cost_usd", "float"),
                ]
            ),
        ),
        "projects": dg.JsonMetadataValue(projects),
        "cost/total_usd": float_meta(sum(p["total_usd"] for p in projects.values())),
    }
    for name, p in projects.items():
        meta[f"cost/project/{name}"] = float_meta(p["total_usd"])
    return dg.MaterializeResult(metadata=meta)
