"""A job with two steps in vidintel's GPU pool, for tests/runtime/test_deploy.py (loaded by file path in
subprocesses)."""

import time
from pathlib import Path

import dagster as dg

from vidintel_pipeline.runtime.gpu import GPU_POOL


def _step(name: str):
    @dg.op(name=name, pool=GPU_POOL, config_schema={"log": str})
    def step(context) -> None:
        start = time.time()
        time.sleep(1.5)
        with Path(context.op_config["log"]).open("a") as f:
            f.write(f"{name} {start} {time.time()}\n")

    return step


first, second = _step("gpu_step_a"), _step("gpu_step_b")


@dg.job(executor_def=dg.multiprocess_executor.configured({"max_concurrent": 2}))
def two_gpu_steps():
    first()
    second()
