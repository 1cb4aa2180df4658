"""The cost report's automation condition, evaluated tick by tick as the daemon would: a video without memory does
not block it, and a memory update in the same tick window as the report's own run is not lost."""

from __future__ import annotations

import dagster as dg


def test_project_costs_refreshes_after_every_memory_update():
    from vidintel_pipeline.definitions import defs

    selection = dg.AssetSelection.assets("project_costs")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("videos", ["p__a", "p__b"])

        def tick(cursor):
            r = dg.evaluate_automation_conditions(
                defs=defs, instance=instance, asset_selection=selection, cursor=cursor
            )
            return r.total_requested, r.cursor

        def materialized(key: str, partition=None) -> None:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=partition))

        requested, cursor = tick(None)
        assert requested == 0  # nothing to report yet
        materialized("memory", "p__a")  # p__b's run failed: it has no memory
        requested, cursor = tick(cursor)
        assert requested == 1  # eager() waits for every partition's memory: it would never refresh
        requested, cursor = tick(cursor)
        assert requested == 0  # requested once, not again at every tick
        # the report's run ends and another video's memory lands, both before the next tick
        materialized("project_costs")
        materialized("memory", "p__b")
        requested, cursor = tick(cursor)
        assert requested == 1  # eager() takes the update as handled by the report's own materialization
        requested, cursor = tick(cursor)
        assert requested == 0
