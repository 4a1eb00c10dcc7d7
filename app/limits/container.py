"""What the container gives this process: its memory limit, the memory it holds, and its usable cores.

cgroup v2 (`memory.max`, `cpu.max`) and v1 (`memory.limit_in_bytes`, `cpu.cfs_quota_us`) are read from
/sys/fs/cgroup; a value that means "no limit" (v2 `max`, v1's page-rounded 2^63) reads as None.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
# cgroup v1 writes "no limit" as a huge page-rounded number; nothing real is above 2^60 bytes.
_UNLIMITED = 1 << 60


def memory_limit_bytes(root: Path = CGROUP) -> int | None:
    """The cgroup's memory limit, or None without one."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        value = _read(path)
        if value is not None:
            return None if value == "max" or int(value) >= _UNLIMITED else int(value)
    return None


def usable_cpus(root: Path = CGROUP) -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota (rounded up)."""
    cores = len(os.sched_getaffinity(0))
    quota = _cpu_quota(root)
    return max(1, min(cores, math.ceil(quota))) if quota is not None else cores


def resident_bytes(status: Path = Path("/proc/self/status")) -> int:
    """This process's resident set size (VmRSS)."""
    return _status_kib(status, "VmRSS") * 1024


def available_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    """Memory the machine can give without swapping (MemAvailable)."""
    return _status_kib(meminfo, "MemAvailable") * 1024


def _cpu_quota(root: Path) -> float | None:
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        return None if quota == "max" else int(quota) / int(period or 100_000)
    quota_v1, period_v1 = _read(root / "cpu" / "cpu.cfs_quota_us"), _read(root / "cpu" / "cpu.cfs_period_us")
    if quota_v1 is None or period_v1 is None or int(quota_v1) <= 0:
        return None
    return int(quota_v1) / int(period_v1)


def _status_kib(path: Path, field: str) -> int:
    for line in path.read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0])
    raise RuntimeError(f"{path} has no {field} line")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
