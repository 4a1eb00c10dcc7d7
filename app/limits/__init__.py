"""Bounds on what requests may spend on the host, checked before they spend it.

- `budget`: the memory budget (SRGAN_MEMORY_BUDGET_MB) that every request reserves its worst case from.
- `cost`: that worst case, estimated from an image's header before anything is decoded.
- `pool`: the one bounded thread pool for decoding, encoding and /compare's stages, with admission.
- `container`: what the container allows (cgroup memory limit and CPU quota), which the defaults follow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.limits import container
from app.limits.budget import MIB, MemoryBudget, default_limit_bytes
from app.limits.pool import HostPool

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostLimits:
    """The service's memory budget and host pool, made once the models are loaded (their resident size
    is what a default budget leaves out)."""

    memory: MemoryBudget
    pool: HostPool

    @classmethod
    def start(cls, budget_mb: int | None, *, largest_request_bytes: int) -> HostLimits:
        """`largest_request_bytes`: what the largest image the pixel limit allows may cost at worst (16-bit
        RGBA), for a warning when the budget cannot hold it."""
        limit = default_limit_bytes() if budget_mb is None else budget_mb * MIB
        limits = cls(MemoryBudget(limit), HostPool(container.usable_cpus()))
        logger.info("memory budget %d MiB (%s), %d host threads, at most %d jobs waiting", limit // MIB,
                    "SRGAN_MEMORY_BUDGET_MB" if budget_mb is not None else _default_source(),
                    limits.pool.workers, limits.pool.max_backlog)
        if largest_request_bytes > limit:
            logger.warning("the largest image SRGAN_MAX_INPUT_PIXELS allows needs up to %d MiB as 16-bit "
                           "RGBA, more than the %d MiB memory budget: such images will be refused with 413",
                           largest_request_bytes // MIB, limit // MIB)
        return limits

    def stop(self) -> None:
        self.pool.shutdown()


def _default_source() -> str:
    limit = container.memory_limit_bytes()
    if limit is None:
        return "from the machine's available memory"
    return f"from the {limit // MIB} MiB cgroup limit"
