"""How many CPUs this container may use, for the default worker count.

``os.cpu_count()`` reports the host's cores, not the container's CPU quota, so a pod limited to 2 CPUs on a
64-core node would fork 64 CPU-bound workers that then fight over 2 cores. The quota lives in the cgroup
filesystem: ``cpu.max`` (cgroup v2) or ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (cgroup v1).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["available_cpus", "cgroup_cpu_limit"]

_V1_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def cgroup_cpu_limit(root: str | os.PathLike[str] = "/sys/fs/cgroup") -> float | None:
    """The CPU quota of this process's cgroup in CPUs (e.g. 1.5), or None when there is none."""
    base = Path(root)
    try:
        quota, period = (base / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        pass
    else:
        return _ratio(quota, period)
    for name in _V1_DIRS:
        try:
            quota = (base / name / "cpu.cfs_quota_us").read_text().strip()
            period = (base / name / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            continue
        return _ratio(quota, period)
    return None


def _ratio(quota: str, period: str) -> float | None:
    if quota == "max":
        return None
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    if q <= 0 or p <= 0:  # NOTE: cgroup v1 writes -1 for "no quota".
        return None
    return q / p


def available_cpus(root: str | os.PathLike[str] = "/sys/fs/cgroup") -> int:
    """Whole CPUs this process may use: the cgroup quota rounded up, capped by the CPUs it may run on."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(cpus, 1)
