"""How many CPUs this process may use: the one number that sizes decoder processes and model threads."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPUs in this process's affinity mask (what taskset or a container's cpuset allow), else all of them."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
