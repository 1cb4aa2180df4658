"""deploy/: every config validated against the schema that reads it, the routing launcher on a real instance, the gpu
pool."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import process_config
from dagster._config.field_utils import convert_potential_field
from dagster._core.instance.config import dagster_instance_config

from vidintel_pipeline.runtime.gpu import COMPUTE_TAG, GPU_OP_TAGS, GPU_POOL
from vidintel_pipeline.runtime.launchers import LAUNCHER_TAG, TagRoutingRunLauncher

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent


def routing_config_ok(cfg: dict) -> None:
    schema = convert_potential_field(TagRoutingRunLauncher.config_type()).config_type
    result = process_config(schema, cfg)
    assert result.success, result.errors
    assert set(result.value["routes"]) == {"gpu"}
    for spec in [*result.value["routes"].values(), result.value["default"]]:
        assert {"module", "class"} <= set(spec)


@pytest.mark.parametrize("path", ["dagster.yaml", "compose/dagster.yaml"])
def test_instance_configs_validate(path, tmp_path):
    (tmp_path / "dagster.yaml").write_text((DEPLOY / path).read_text())
    cfg, _ = dagster_instance_config(str(tmp_path))  # Dagster's own schema and concurrency checks
    assert cfg["run_launcher"]["module"] == "vidintel_pipeline.runtime.launchers"
    routing_config_ok(cfg["run_launcher"]["config"])
    assert (
        cfg["run_coordinator"]["class"] == "QueuedRunCoordinator" and cfg["concurrency"]["pools"]["default_limit"] >= 1
    )
    assert {"key": COMPUTE_TAG, "value": "gpu"} in [
        {k: lim[k] for k in ("key", "value")} for lim in cfg["concurrency"]["runs"]["tag_concurrency_limits"]
    ]


def test_helm_values_compose_and_dockerfiles_reference_what_exists():

    values = yaml.safe_load((DEPLOY / "helm/values.yaml").read_text())
    launcher = values["runLauncher"]
    assert launcher["type"] == "CustomRunLauncher"
    custom = launcher["config"]["customRunLauncher"]
    assert (custom["module"], custom["class"]) == ("vidintel_pipeline.runtime.launchers", "TagRoutingRunLauncher")
    routing_config_ok(custom["config"])
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "vidintel_pipeline.definitions"]
    assert custom["config"]["routes"]["gpu"]["config"]["job_image"].split(":")[0].endswith("vidintel-gpu")
    gpu_route = custom["config"]["routes"]["gpu"]["config"]["run_k8s_config"]["container_config"]["resources"]["limits"]
    assert gpu_route["nvidia.com/gpu"] == "1"
    limits = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    assert {"key": COMPUTE_TAG, "value": "gpu", "limit": 4} in limits

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name in ("Dockerfile", "Dockerfile.gpu"):
        text = (DEPLOY / name).read_text()
        for src in re.findall(r"^COPY (.+) \S+$", text, flags=re.M):
            for part in src.split():
                assert (ROOT / part).exists(), f"{name} copies {part}, which does not exist"
        for extra in re.findall(r'"\.\[(\w+)\]"', text):
            assert extra in extras, f"{name} installs the unknown extra {extra}"
        assert "vidintel models fetch" in text and "vidintel_pipeline.definitions" in text

    compose = yaml.safe_load((DEPLOY / "compose/docker-compose.yaml").read_text())
    services = compose["services"]
    built = {s["image"] for s in services.values() if "build" in s}
    for name, svc in services.items():
        if "build" in svc:
            assert (ROOT / "deploy/compose" / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve().is_file()
        elif svc["image"] not in built:
            assert re.search(r":[\w.-]+$", svc["image"]) and not svc["image"].endswith(":latest"), (
                f"{name}: pin the image"
            )
        cmd = svc.get("command") or []
        if cmd and cmd[0].startswith("dagster"):
            assert (BIN / cmd[0]).exists(), f"{name} runs {cmd[0]}, which is not installed"
        for vol in svc.get("volumes", []):
            if vol.startswith("./"):
                assert (DEPLOY / "compose" / vol.split(":")[0]).is_file(), vol
    assert (
        "-m" in services["user_code"]["command"] and "vidintel_pipeline.definitions" in services["user_code"]["command"]
    )
    workspace = yaml.safe_load((DEPLOY / "compose/workspace.yaml").read_text())
    server = workspace["load_from"][0]["grpc_server"]
    assert server["host"] == "user_code" and str(server["port"]) in services["user_code"]["command"]


def test_gpu_asset_carries_pool_and_executor_tags():
    from vidintel_pipeline.definitions import defs

    op = defs.resolve_assets_def("gpu_analysis").op
    assert op.pool == GPU_POOL
    tags = {
        k: json.loads(v) if v.startswith("{") else v for k, v in op.tags.items()
    }  # Dagster stores dict tags as JSON
    assert tags == GPU_OP_TAGS
    assert tags["dagster-k8s/config"]["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert tags["dagster-celery/queue"] == "gpu" and "ecs/task_overrides" in tags
    assert defs.resolve_job_def("ingest_video_gpu").tags[COMPUTE_TAG] == "gpu"
    assert COMPUTE_TAG not in (defs.resolve_job_def("ingest_video").tags or {})
    for name in ("temporal_markers", "transcript", "memory"):  # CPU steps hold no GPU slot
        assert defs.resolve_assets_def(name).op.pool is None


def test_routing_launcher_sends_tagged_runs_to_the_gpu_route(tmp_path):
    """A real instance (SQLite) whose two routes are local launchers; runs launched with `dagster job launch`."""
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        yaml.safe_dump(
            {
                "telemetry": {"enabled": False},
                # launch at once (the queued coordinator would wait for a daemon)
                "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"},
                "run_launcher": {
                    "module": "vidintel_pipeline.runtime.launchers",
                    "class": "TagRoutingRunLauncher",
                    "config": {
                        "routes": {"gpu": {"module": "dagster", "class": "DefaultRunLauncher"}},
                        "default": {"module": "dagster", "class": "DefaultRunLauncher"},
                    },
                },
            }
        )
    )
    env = {**os.environ, "DAGSTER_HOME": str(home), "VIDINTEL_HOME": str(tmp_path / "vi")}
    # no tag but a selected plugin that declares requires_gpu (as a launchpad run of ingest_video with
    # transnetv2 would): routed as GPU work, and tagged so
    gpu_config = tmp_path / "gpu_plugins.yaml"
    gpu_config.write_text(yaml.safe_dump({"resources": {"temporal_plugins": {"config": {"plugins": ["transnetv2"]}}}}))
    for tags, config in (
        ({COMPUTE_TAG: "gpu"}, []),
        ({}, []),
        ({"vidintel/case": "plugins", "dagster/partition": "acme__ghost"}, ["-c", str(gpu_config)]),
    ):
        proc = subprocess.run(
            [
                str(BIN / "dagster"),
                "job",
                "launch",
                "-w",
                str(ROOT / "workspace.yaml"),
                "-j",
                "cost_report",
                "--tags",
                json.dumps(tags),
                *config,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    instance = dg.DagsterInstance.from_config(str(home))
    assert isinstance(instance.run_launcher, TagRoutingRunLauncher)
    deadline = time.time() + 120
    while True:
        runs = instance.get_runs()
        if len(runs) == 3 and all(r.is_finished for r in runs) or time.time() > deadline:
            break
        time.sleep(1)
    by_plugins = next(r for r in runs if r.tags.get("vidintel/case") == "plugins")
    routed = {r.tags.get(COMPUTE_TAG, "none"): r for r in runs if r is not by_plugins}
    assert all(r.is_finished for r in runs), [(r.run_id, r.status) for r in runs]
    assert set(routed) == {"gpu", "none"}
    assert routed["gpu"].tags[LAUNCHER_TAG] == "gpu" and routed["none"].tags[LAUNCHER_TAG] == "default"
    assert by_plugins.tags[COMPUTE_TAG] == "gpu" and by_plugins.tags[LAUNCHER_TAG] == "gpu"
    assert "transnetv2" in by_plugins.tags["vidintel/gpu_reason"]
    # launched with only the partition tag, as from an asset page: findable by project like every other run
    assert (by_plugins.tags["vidintel/project"], by_plugins.tags["vidintel/video"]) == ("acme", "ghost")
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), [(r.run_id, r.status) for r in runs]
    events = [e.message for e in instance.all_logs(routed["gpu"].run_id) if e.message and "vidintel:" in e.message]
    assert events and "the gpu launcher (DefaultRunLauncher)" in events[0]


@pytest.mark.parametrize("limit", [1, 2])
def test_gpu_pool_limit_is_respected(limit, tmp_path):
    from dagster._core.definitions.reconstruct import ReconstructableJob

    job = ReconstructableJob.for_file(str(Path(__file__).parent / "pool_job.py"), "two_gpu_steps")
    (tmp_path / "dagster.yaml").write_text(
        yaml.safe_dump(
            {"telemetry": {"enabled": False}, "concurrency": {"pools": {"granularity": "op", "default_limit": limit}}}
        )
    )
    log = tmp_path / "steps.log"
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        result = dg.execute_job(
            job,
            instance=instance,
            run_config={
                "ops": {"gpu_step_a": {"config": {"log": str(log)}}, "gpu_step_b": {"config": {"log": str(log)}}}
            },
        )
        assert result.success
    (a0, a1), (b0, b1) = [tuple(map(float, line.split()[1:])) for line in sorted(log.read_text().splitlines())]
    overlap = min(a1, b1) - max(a0, b0)
    if limit == 1:
        assert overlap <= 0, f"the two gpu steps ran together for {overlap:.2f} s under a pool limit of 1"
    else:
        assert overlap > 0.5, "with two slots the steps should run together (else this test could not fail)"


def _pins(lock: Path) -> dict[str, str]:
    return {n.lower(): v for n, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock.read_text(), re.M)}


@pytest.mark.parametrize(
    "dockerfile, lock, extras",
    [("Dockerfile", "deploy.txt", ["deploy"]), ("Dockerfile.gpu", "deploy-gpu.txt", ["deploy", "gpu"])],
)
def test_images_install_the_tested_lock(dockerfile, lock, extras):
    """Each image installs only from its hashed lock, which pins every requirement of its extras at the versions
    the tests ran (requirements/lock.txt), the Dagster libraries in lockstep, and vidintel itself without
    dependencies (so nothing resolves on the day of the build)."""
    text = (DEPLOY / dockerfile).read_text()
    installs = re.findall(r"pip install ([^\n&\\]+)", text)
    assert f"--require-hashes -r requirements/{lock}" in installs, installs
    others = [i for i in installs if "requirements/" not in i and not i.startswith("--upgrade pip==")]
    assert others and all(i.split()[:2] == ["--no-deps", "."] for i in others), others
    assert re.search(rf"^COPY requirements/{re.escape(lock)} ", text, re.M)

    pins, tested = _pins(ROOT / "requirements" / lock), _pins(ROOT / "requirements" / "lock.txt")
    body = (ROOT / "requirements" / lock).read_text()
    assert all(re.search(r"--hash=sha256:[0-9a-f]{64}", block) for block in body.split("==")[1:])
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"]) + [r for e in extras for r in project["optional-dependencies"][e]]
    for req in wanted:
        name = re.split(r"[<>=\[ ;]", req, maxsplit=1)[0].lower()
        assert name in pins, f"{lock} lacks {name}"
        if "==" in req:
            assert pins[name] == req.split("==")[1].split(";")[0].strip(), (name, pins[name])
    # the versions CI tested; PyPI's CUDA torch pins its own triton and brings the nvidia-* libraries
    differ = {
        n: (v, tested[n]) for n, v in pins.items() if n in tested and v != tested[n].split("+")[0] and n != "triton"
    }
    assert not differ, f"{lock} differs from lock.txt (run make lock): {differ}"
    assert {v for n, v in pins.items() if n.startswith("dagster-") and n != "dagster-pipes"} <= {"0.29.27", "1.13.27"}
    if "gpu" in extras:
        assert pins["torch"] == "2.13.0" and any(n.startswith("nvidia-") for n in pins), "the CUDA build of torch"


def _locations(path: Path) -> list[str]:
    """What each code location of a deploy config loads (module name, or host:port of a gRPC server)."""
    doc = yaml.safe_load(path.read_text())
    if "dagster-user-deployments" in doc:
        return [" ".join(d["dagsterApiGrpcArgs"]) for d in doc["dagster-user-deployments"]["deployments"]]
    out = []
    for entry in doc["load_from"]:
        ((kind, spec),) = entry.items()
        out.append(spec.get("module_name") or f"{spec.get('host')}:{spec.get('port')}")
    return out


@pytest.mark.parametrize("path", ["workspace.yaml", "deploy/compose/workspace.yaml", "deploy/helm/values.yaml"])
def test_one_code_location_runs_the_sensors_and_schedules(path):
    """Two locations loading the module would each run new_video_sensor and nightly_rescan: every new video twice."""
    [location] = _locations(ROOT / path)
    if path == "deploy/compose/workspace.yaml":  # the gRPC server the compose file starts serves the module
        compose = yaml.safe_load((DEPLOY / "compose/docker-compose.yaml").read_text())
        assert "vidintel_pipeline.definitions" in compose["services"]["user_code"]["command"]
    else:
        assert "vidintel_pipeline.definitions" in location
    from vidintel_pipeline.definitions import defs

    sensors = [s.name for s in defs.sensors or []]
    schedules = [s.name for s in defs.schedules or []]
    assert len(sensors) == len(set(sensors)) and len(schedules) == len(set(schedules))
    assert {"new_video_sensor", "gpu_merge_sensor", "costs_automation"} <= set(sensors)
    assert {"nightly_rescan", "nightly_rescan_gpu"} <= set(schedules)


@pytest.mark.parametrize("name", ["multiprocess", "in_process", "celery", "k8s"])
def test_executor_choice_builds_every_job_with_it(name):
    """VIDINTEL_EXECUTOR picks the executor of every job, still holding the per-video lock; gpu_analysis carries the
    op tags the celery and k8s executors route by."""
    import dagster as dg

    from vidintel_pipeline.definitions import defs
    from vidintel_pipeline.runtime import executors

    chosen = executors.choose(name)
    assert chosen.name == name and "video's lock" in (chosen.description or "")
    rebuilt = dg.Definitions(
        assets=list(defs.assets or []), jobs=list(defs.jobs or []), executor=chosen, resources=defs.resources
    )
    job = rebuilt.resolve_job_def("ingest_video_gpu")
    assert job.executor_def.name == name
    tags = rebuilt.resolve_assets_def("gpu_analysis").op.tags
    assert tags["dagster-celery/queue"] == "gpu" and "dagster-k8s/config" in tags


def test_an_unknown_executor_is_refused_clearly():
    import dagster as dg

    from vidintel_pipeline.runtime import executors

    with pytest.raises(dg.DagsterInvalidDefinitionError, match="choose one of multiprocess, in_process, celery, k8s"):
        executors.choose("spark")


def test_the_routing_launcher_covers_the_run_launcher_api():
    """The launcher subclasses Dagster's RunLauncher (no public base exists): pinned to the lock's Dagster, and every
    public method of the base is delegated to the routed launcher, so a Dagster upgrade that adds one fails here."""
    import dagster
    from dagster._core.launcher import RunLauncher

    lock = (ROOT / "requirements/lock.txt").read_text()
    assert f"dagster=={dagster.__version__} " in lock or f"dagster=={dagster.__version__}\n" in lock
    public = {n for n in dir(RunLauncher) if not n.startswith("_")}
    assert RunLauncher.__abstractmethods__ == {"launch_run", "terminate"}
    assert public - set(TagRoutingRunLauncher.__dict__) == {"has_instance"}, public - set(
        TagRoutingRunLauncher.__dict__
    )


def test_a_small_source_runs_in_process_an_untagged_or_large_one_does_not(monkeypatch):
    import dagster as dg

    from vidintel_pipeline.runtime.executors import IN_PROCESS_MAX_MB_ENV, SOURCE_BYTES_TAG, runs_in_process

    monkeypatch.delenv(IN_PROCESS_MAX_MB_ENV, raising=False)
    assert runs_in_process({SOURCE_BYTES_TAG: str(32_000_000)}) and not runs_in_process({SOURCE_BYTES_TAG: "32000001"})
    assert not runs_in_process({}) and not runs_in_process({SOURCE_BYTES_TAG: "many"})  # unknown size: processes
    monkeypatch.setenv(IN_PROCESS_MAX_MB_ENV, "0")  # never
    assert not runs_in_process({SOURCE_BYTES_TAG: "1"})
    monkeypatch.setenv(IN_PROCESS_MAX_MB_ENV, "lots")
    with pytest.raises(dg.DagsterInvalidConfigError, match="VIDINTEL_IN_PROCESS_MAX_MB must be a number"):
        runs_in_process({SOURCE_BYTES_TAG: "1"})
