"""The threaded in-process executor: independent steps overlap, and failures, retries, skips and interrupts end a
run as Dagster's in-process executor ends it."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg
import pytest

from vidintel_pipeline.runtime.threaded import STEP_THREADS_ENV, execute_threaded, step_threads

SPANS: dict[str, tuple[float, float]] = {}


def _span(name: str, seconds: float) -> None:
    t0 = time.monotonic()
    time.sleep(seconds)
    SPANS[name] = (t0, time.monotonic())


@dg.op
def start() -> int:
    return 1


@dg.op
def left(x: int) -> int:
    _span("left", 0.8)
    return x + 1


@dg.op
def right(x: int) -> int:
    _span("right", 0.8)
    return x + 2


@dg.op
def broken(x: int) -> int:
    time.sleep(0.2)
    raise dg.Failure(description="the right branch broke")


@dg.op
def join(a: int, b: int) -> int:
    return a + b


ATTEMPTS: list[int] = []


@dg.op(retry_policy=dg.RetryPolicy(max_retries=2))
def flaky(context: dg.OpExecutionContext, x: int) -> int:
    ATTEMPTS.append(context.retry_number)
    if context.retry_number == 0:
        raise RuntimeError("first try fails")
    return x + 2


@dg.job
def diamond():
    s = start()
    join(left(s), right(s))


@dg.job
def half_broken():
    s = start()
    join(left(s), broken(s))


@dg.job
def retried():
    s = start()
    join(left(s), flaky(s))


@pytest.fixture()
def instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:  # SQLite storage: written from both step threads
        yield inst


def _overlap() -> float:
    (a0, a1), (b0, b1) = SPANS["left"], SPANS["right"]
    return min(a1, b1) - max(a0, b0)


def test_independent_steps_run_side_by_side_and_the_run_is_an_ordinary_run(instance):
    SPANS.clear()
    result = execute_threaded(diamond, instance=instance, max_concurrent=2, raise_on_error=True)
    assert result.success and result.output_for_node("join") == 5
    assert _overlap() > 0.5, SPANS  # both 0.8 s sleeps at once
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
    stored = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
    assert sorted(e.step_key for e in stored) == ["join", "left", "right", "start"]

    SPANS.clear()
    assert execute_threaded(diamond, instance=instance, max_concurrent=1, raise_on_error=True).success
    assert _overlap() < 0, SPANS  # one at a time: Dagster's own loop


def test_a_failed_branch_fails_the_run_skips_its_dependants_and_lets_the_other_branch_finish(instance):
    SPANS.clear()
    result = execute_threaded(half_broken, instance=instance, max_concurrent=2)
    assert not result.success
    failed = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failed] == ["broken"]
    assert failed[0].step_failure_data.user_failure_data.description == "the right branch broke"
    assert "left" in SPANS and result.output_for_node("left") == 2  # not cut short by the other's failure
    assert "join" not in {e.step_key for e in result.all_events if e.is_step_start}  # its input never came

    def steps(events):  # what each step went through, as Dagster's in-process executor reports it
        kept = [e for e in events if e.step_key and e.event_type_value != "LOGS_CAPTURED"]
        return sorted((e.step_key, e.event_type_value) for e in kept)

    assert steps(result.all_events) == steps(half_broken.execute_in_process(raise_on_error=False).all_events)
    assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_step_up_for_retry_runs_again_beside_the_others(instance):
    ATTEMPTS.clear()
    result = execute_threaded(retried, instance=instance, max_concurrent=2, raise_on_error=True)
    assert result.success and ATTEMPTS == [0, 1] and result.output_for_node("join") == 5


def test_step_threads_follow_the_cpus_and_the_setting(monkeypatch):
    monkeypatch.delenv(STEP_THREADS_ENV, raising=False)
    assert step_threads() == min(2, len(os.sched_getaffinity(0)))
    monkeypatch.setenv(STEP_THREADS_ENV, "3")
    assert step_threads() == 3
    monkeypatch.setenv(STEP_THREADS_ENV, "0")
    with pytest.raises(dg.DagsterInvalidConfigError, match="VIDINTEL_STEP_THREADS must be a whole number"):
        step_threads()


INTERRUPTED = textwrap.dedent(
    """
    import subprocess, sys, time
    import dagster as dg
    from vidintel_pipeline.runtime.threaded import execute_threaded

    def busy(name):
        child = subprocess.Popen(["sleep", "60"])  # a decoder stand-in: must not outlive the interrupted step
        print(name, child.pid, flush=True)
        try:
            for _ in range(600):
                time.sleep(0.05)
        finally:
            child.kill()
            child.wait()

    @dg.op
    def start():
        return 1

    @dg.op
    def a(x):
        busy("a")

    @dg.op
    def b(x):
        busy("b")

    @dg.job
    def two():
        s = start()
        a(s)
        b(s)

    with dg.instance_for_test(temp_dir=sys.argv[1]) as instance:
        result = execute_threaded(two, instance=instance, max_concurrent=2)
        failed = sorted(e.step_key for e in result.all_events if e.is_step_failure)
        print("status", instance.get_run_by_id(result.run_id).status.value, ",".join(failed), flush=True)
    """
)


def test_an_interrupt_stops_every_running_step_and_their_child_processes(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    children = {}
    assert proc.stdout is not None
    while len(children) < 2:  # both steps running, each with its child
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        name, pid = line.split()
        children[name] = int(pid)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 10, "the steps ran on after the interrupt"
    assert "status FAILURE a,b" in out or "status CANCELED a,b" in out, (out, err[-3000:])
    for pid in children.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_cli_ingest_runs_the_transcript_beside_the_visual_pass(home, demo_video, monkeypatch):
    import io

    from vidintel_pipeline.defs.progress import listening
    from vidintel_pipeline.defs.progress_bar import ProgressBar
    from vidintel_pipeline.runtime import in_process
    from vidintel_pipeline.runtime.instance import get_instance

    monkeypatch.setenv(STEP_THREADS_ENV, "2")  # as on any machine of 2 CPUs or more
    out = io.StringIO()  # not a terminal: a line per phase, however the two steps' reports interleave
    bar = ProgressBar(stream=out)
    with listening(bar):
        info = in_process.ingest(str(demo_video[0]), "acme", "threads", quiet=True)
    stats = {s.step_key: s for s in get_instance().get_run_step_stats(info["run_id"])}
    assert all(s.status.value == "SUCCESS" for s in stats.values()), stats
    t, v = stats["transcript"], stats["visual_analysis"]
    assert t.start_time < v.end_time and v.start_time < t.end_time, (t, v)  # the two ran at the same time
    lines = out.getvalue().splitlines()
    assert len(lines) == len(set(lines)) and len({line.rsplit(" ", 1)[-1] for line in lines}) == len(lines), lines
