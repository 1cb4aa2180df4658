"""A run launcher that sends each run to one of several launchers, chosen by a run tag.

Dagster has one run launcher per instance. GPU work should run on GPU machines and nothing else should hold one, so
this launcher looks at ``vidintel/compute`` (``tag_key``) on each run and hands it to the launcher configured for
that value -- a ``K8sRunLauncher`` with a GPU node pool, an ``EcsRunLauncher`` with a GPU task definition -- or to
``default`` when the tag is absent or unknown. Runs of the ``ingest_video_gpu`` job carry the tag; a run without it
whose selected plugins include one declaring ``requires_gpu`` (from its run config, or the resources' defaults) is
tagged here and routed the same way. The choice is recorded on the run as an engine event (and a
``vidintel/launcher`` tag) so operators see in the UI where a run went.

In ``dagster.yaml``::

    run_launcher:
      module: vidintel_pipeline.runtime.launchers
      class: TagRoutingRunLauncher
      config:
        tag_key: vidintel/compute
        routes:
          gpu: {module: dagster_k8s, class: K8sRunLauncher, config: {...}}
        default: {module: dagster_k8s, class: K8sRunLauncher, config: {...}}

"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, cast

import yaml
from dagster import DagsterRun, Field, Permissive, Shape

# custom run launchers have no public base class: this is Dagster's documented extension point, pinned to the
# version in the lock and checked by tests/runtime/test_deploy.py::test_the_routing_launcher_covers_the_run_launcher_api
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, ResumeRunContext, RunLauncher
from dagster._serdes import ConfigurableClass
from dagster._serdes.config_class import ConfigurableClassData

from vidintel_pipeline.runtime.gpu import COMPUTE_TAG, GPU_REASON_TAG, gpu_reason

LAUNCHER_TAG = "vidintel/launcher"
_LAUNCHER = Shape({"module": str, "class": str, "config": Field(Permissive(), is_required=False, default_value={})})


class TagRoutingRunLauncher(RunLauncher, ConfigurableClass):
    def __init__(
        self,
        inst_data: Optional[ConfigurableClassData] = None,
        tag_key: str = COMPUTE_TAG,
        routes: Optional[Mapping[str, Mapping[str, Any]]] = None,
        default: Optional[Mapping[str, Any]] = None,
    ):
        super().__init__()
        self._inst_data = inst_data
        self.tag_key = tag_key
        self.routes = {value: _build(spec) for value, spec in (routes or {}).items()}
        self.default = _build(default or {"module": "dagster", "class": "DefaultRunLauncher"})

    @property
    def inst_data(self) -> Optional[ConfigurableClassData]:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {
            "tag_key": Field(str, is_required=False, default_value=COMPUTE_TAG),
            "routes": Field(
                Permissive(),
                is_required=False,
                default_value={},
                description="{tag value: {module, class, config}}: the launcher for runs with that tag value.",
            ),
            "default": Field(_LAUNCHER, is_required=False, description="The launcher for every other run."),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> "TagRoutingRunLauncher":
        return cls(inst_data=inst_data, **config_value)

    def register_instance(self, instance) -> None:
        super().register_instance(instance)
        for launcher in self._all():
            launcher.register_instance(instance)

    def _all(self) -> list[RunLauncher]:
        return [*self.routes.values(), self.default]

    def route(self, run: DagsterRun) -> tuple[str, RunLauncher]:
        value = (run.tags or {}).get(self.tag_key)
        if value is not None and value in self.routes:
            return value, self.routes[value]
        return "default", self.default

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        tags = dict(run.tags or {})
        # a run with no compute tag whose selected plugins need a GPU (a launchpad run of ingest_video with
        # transnetv2, say) is GPU work too: tag it, so routing, the UI and run filters all see it
        why = gpu_reason(tags, run.run_config) if self.tag_key == COMPUTE_TAG and not tags.get(COMPUTE_TAG) else None
        extra = {COMPUTE_TAG: "gpu", GPU_REASON_TAG: why[:250]} if why else {}
        # a run launched from an asset page or a backfill carries only dagster/partition: tag its project and
        # video here, so the runs list filters it by vidintel/project like every other run
        extra |= video_tags(tags)
        if extra:
            tags |= extra
            self._instance.add_run_tags(run.run_id, extra)
            run = self._instance.get_run_by_id(run.run_id) or run
            context = LaunchRunContext(dagster_run=run, workspace=context.workspace)
        name, launcher = self.route(run)
        self._instance.add_run_tags(run.run_id, {LAUNCHER_TAG: name})
        self._instance.report_engine_event(
            f"vidintel: {self.tag_key}={tags.get(self.tag_key, '(none)')}"
            + (f" ({why})" if why else "")
            + f" -> the {name} launcher ({type(launcher).__name__})",
            run,
            cls=self.__class__,
        )
        launcher.launch_run(context)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        return self.route(run)[1].terminate(run_id) if run else False

    @property
    def supports_check_run_worker_health(self) -> bool:
        return all(launcher.supports_check_run_worker_health for launcher in self._all())

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        return self.route(run)[1].check_run_worker_health(run)

    @property
    def supports_resume_run(self) -> bool:  # run monitoring resumes a run whose worker died (K8sRunLauncher can)
        return all(launcher.supports_resume_run for launcher in self._all())

    def resume_run(self, context: ResumeRunContext) -> None:
        self.route(context.dagster_run)[1].resume_run(context)

    def get_run_worker_debug_info(
        self, run: DagsterRun, include_container_logs: Optional[bool] = True
    ) -> Optional[str]:
        return self.route(run)[1].get_run_worker_debug_info(run, include_container_logs)

    def dispose(self) -> None:
        for launcher in self._all():
            launcher.dispose()

    def join(self, timeout: int = 30) -> None:
        for launcher in self._all():
            launcher.join(timeout)


def video_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """``vidintel/project`` and ``vidintel/video`` from a per-video run's ``dagster/partition``, if missing."""
    from vidintel_pipeline.defs.partitions import PROJECT_TAG, VIDEO_TAG
    from vidintel_pipeline.storage.layout import PARTITION_SEP

    partition = tags.get("dagster/partition", "")
    if PROJECT_TAG in tags or PARTITION_SEP not in partition:
        return {}
    project, video = partition.split(PARTITION_SEP, 1)
    return {PROJECT_TAG: project, VIDEO_TAG: video}


def _build(spec: Mapping[str, Any]) -> RunLauncher:
    data = ConfigurableClassData(
        spec["module"], spec["class"], yaml.dump(dict(spec.get("config") or {}), default_flow_style=False)
    )
    # rehydrate checks the class is a subclass of as_type, which mypy takes to be concrete (RunLauncher is abstract)
    return data.rehydrate(as_type=cast("type[RunLauncher]", RunLauncher))
