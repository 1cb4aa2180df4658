"""A one-step job under vidintel's video-locking executor, for tests/test_concurrency.py.

Run as ``python tests/storage/lock_job.py PARTITION LOG SLEEP_S``, it executes one run in this process, as a run
worker the daemon launched would (its executor holds the video's lock), and prints the run id and outcome.
"""

import json
import sys
import time
from pathlib import Path

import dagster as dg

from vidintel_pipeline.runtime.executors import video_locked


@dg.op(config_schema={"log": str, "sleep_s": float})
def hold_a_while(context) -> None:
    start = time.time()
    Path(context.op_config["log"]).write_text(f"started {start}\n")
    time.sleep(context.op_config["sleep_s"])
    with Path(context.op_config["log"]).open("a") as f:
        f.write(f"ended {time.time()}\n")


@dg.job(executor_def=video_locked(dg.multiprocess_executor))
def one_locked_step():
    hold_a_while()


if __name__ == "__main__":
    from dagster._core.definitions.reconstruct import ReconstructableJob

    from vidintel_pipeline.runtime.instance import get_instance

    partition, log, sleep_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
    result = dg.execute_job(
        ReconstructableJob.for_file(__file__, "one_locked_step"),
        instance=get_instance(),
        run_config={"ops": {"hold_a_while": {"config": {"log": log, "sleep_s": sleep_s}}}},
        tags={"dagster/partition": partition},
    )
    print(json.dumps({"run_id": result.run_id, "success": result.success}))
