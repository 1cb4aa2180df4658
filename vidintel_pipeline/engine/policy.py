"""How one plugin call is made: a timeout, retries with exponential backoff and jitter for retryable errors,
and a :class:`PluginRun` record of what ran, what failed and why (it ends up in the materialization metadata).
Also the event-loop plumbing: coroutines run on daemon threads, so a hung provider call never blocks exit."""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Coroutine, Optional

from vidintel_pipeline.plugin_api.contracts import (
    PluginError,
)

MAX_RUN_WARNINGS = 10  # reasons kept per plugin run (the counts are always complete)


@dataclass
class RunPolicy:
    timeout_s: float = 1800.0
    max_retries: int = 2
    retry_base_delay_s: float = 1.0
    fallbacks: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class PluginRun:
    plugin: str
    version: str
    status: str = "ok"  # ok | failed
    markers: int = 0
    seconds: float = 0.0
    cost_usd: float = 0.0
    cached: bool = False
    attempts: int = 0
    requests: int = 0
    error: Optional[str] = None
    retryable: Optional[bool] = None  # set on failure: may trying again later succeed (throttling, timeouts)?
    fallback_for: Optional[str] = None
    clamped: int = 0  # markers moved into [chunk start, chunk end] (see check_markers)
    dropped: int = 0  # markers dropped alone: malformed or far outside the chunk
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v != []}


async def gather_all(coros) -> None:
    await asyncio.gather(*coros)


async def call_with_policy(call: Callable[[], Awaitable[Any]], policy: RunPolicy, name: str, run: PluginRun) -> Any:
    """Await ``call()`` with a timeout; retry retryable failures with exponential backoff and jitter."""
    for attempt in range(policy.max_retries + 1):
        run.attempts += 1
        try:
            return await asyncio.wait_for(call(), timeout=policy.timeout_s)
        except asyncio.TimeoutError:
            err: PluginError = PluginError(f"timed out after {policy.timeout_s:g} s", plugin=name, retryable=True)
        except PluginError as exc:
            err = exc
        except Exception as exc:  # a plugin bug: not worth retrying, but never lost
            raise PluginError(f"{type(exc).__name__}: {exc}", plugin=name) from exc
        if not err.retryable or attempt == policy.max_retries:
            raise err
        delay = policy.retry_base_delay_s * (2**attempt)
        await asyncio.sleep(delay + random.uniform(0, delay))
    raise AssertionError("unreachable")


def record_failure(run: PluginRun, exc: BaseException) -> None:
    run.status = "failed"
    run.error = f"{type(exc).__name__}: {exc}"
    run.retryable = bool(getattr(exc, "retryable", False))


class _DaemonThreads(concurrent.futures.ThreadPoolExecutor):  # asyncio accepts only this type as default executor
    """Each call on its own daemon thread. A plugin stuck in a blocking call after its timeout is abandoned:
    it cannot hold the step, or the process's exit, hostage the way a joined thread pool would."""

    def submit(self, fn, /, *args, **kwargs):
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def work() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                fut.set_exception(exc)

        threading.Thread(target=work, daemon=True, name="vidintel-plugin-call").start()
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """``asyncio.run`` for plugin calls, except that threads left blocked by timed-out plugins are not waited for."""
    with asyncio.Runner() as runner:
        runner.get_loop().set_default_executor(_DaemonThreads())
        return runner.run(coro)
