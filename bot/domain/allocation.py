"""Which GPUs a claim may take, from a live inventory snapshot. Pure and deterministic.

A GPU is a candidate when it is healthy, held by no live lease, runs no compute process
and uses at most ``busy_memory_bytes``. When the driver cannot list its processes, the
memory threshold alone decides; with neither known, nothing shows the GPU idle, so it is
not given out. Candidates are ordered least recently leased first (never-leased first),
then by index, so wear and heat spread over the cards. A multi-GPU claim takes all its
GPUs from one host. The database, not this function, has the last word: the grant
inserts allocation rows whose keys refuse a GPU held twice.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from bot.domain.gpus import GpuInfo

_NEVER = datetime.min


def is_idle(gpu: GpuInfo, *, busy_memory_bytes: int) -> bool:
    if not gpu.healthy or gpu.processes:
        return False
    used = gpu.memory_used_bytes
    if used is None:
        return gpu.processes_known
    return used <= busy_memory_bytes


def matches_model(gpu: GpuInfo, model: str | None) -> bool:
    return not model or model.lower() in gpu.name.lower()


def candidates(
    gpus: Sequence[GpuInfo],
    *,
    taken: Collection[str],
    busy_memory_bytes: int,
    model: str | None = None,
    last_leased: Mapping[str, datetime] | None = None,
) -> list[GpuInfo]:
    last = last_leased or {}
    free = [g for g in gpus if g.uuid not in taken and matches_model(g, model)
            and is_idle(g, busy_memory_bytes=busy_memory_bytes)]
    return sorted(free, key=lambda g: (_naive(last.get(g.uuid)), g.host, g.index))


def choose(
    gpus: Sequence[GpuInfo],
    *,
    count: int,
    taken: Collection[str],
    busy_memory_bytes: int,
    model: str | None = None,
    last_leased: Mapping[str, datetime] | None = None,
) -> list[GpuInfo] | None:
    """The GPUs to grant, all on one host, or None when no host has ``count`` free."""
    by_host: dict[str, list[GpuInfo]] = {}
    for gpu in candidates(gpus, taken=taken, busy_memory_bytes=busy_memory_bytes,
                          model=model, last_leased=last_leased):
        by_host.setdefault(gpu.host, []).append(gpu)
        if len(by_host[gpu.host]) == count:
            return by_host[gpu.host]
    return None


def busy_outside_leases(gpus: Sequence[GpuInfo], *, taken: Collection[str]) -> list[GpuInfo]:
    """GPUs running compute processes while no lease holds them: someone is using the
    card outside the bot. They are never given out and should be reported."""
    return [g for g in gpus if g.processes and g.uuid not in taken]


def _naive(moment: datetime | None) -> datetime:
    return _NEVER if moment is None else moment.replace(tzinfo=None)
