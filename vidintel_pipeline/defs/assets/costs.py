"""The ``costs`` group: the per-project cost report from the ledger."""

from typing import Any

import dagster as dg

from vidintel.resources import CostControls
from vidintel_pipeline.defs.assets.common import float_meta
from vidintel_pipeline.defs.assets.outputs import memory

# Dagster's eager(), less two things that left the report stale: a video without memory (its run failed) blocked
# every refresh after it, and a memory update in the same tick window as the report's own request or materialization
# was taken as handled (seen in the UI test: a report run ending at 20:21:38 and another video's memory at 20:21:50,
# between two ticks; no refresh followed). Here a tick resets the trigger only when no memory updated since the last.
# tests/defs/test_cost_report_refresh.py replays both.
_UPDATED = dg.AutomationCondition.any_deps_updated()
REFRESH_AFTER_MEMORY = (
    (dg.AutomationCondition.newly_missing() | _UPDATED).since(
        (dg.AutomationCondition.newly_requested() & ~_UPDATED) | dg.AutomationCondition.initial_evaluation()
    )
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("refresh after memory updates")


@dg.asset(
    group_name="costs",
    kinds={"sqlite"},
    deps=[memory],
    automation_condition=REFRESH_AFTER_MEMORY,
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
