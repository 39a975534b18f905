"""The line of requests waiting for GPUs: its order, and what may be granted. Pure.

Order: first come, first served, except that a person who holds no GPU goes ahead of
everyone who already holds one (a second GPU waits for the first one of someone else).

No starvation of large requests: once a request for more than one GPU has waited
``reserve_after`` without fitting, it *reserves* the host with the most GPUs it could
use: nothing behind it in line is granted on that host, so GPUs freeing there pile up
for it until it fits (EASY-style reservation, without runtime estimates: leases have
end times, but users extend and release early).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from bot.domain import allocation
from bot.domain.gpus import GpuInfo
from bot.domain.lease import Lease


def ordered(waiting: Iterable[Lease], *, holders: set[str]) -> list[Lease]:
    """The line: holders of nothing first, then by time queued (then lease id)."""
    return sorted(waiting, key=lambda lease: (lease.user_id in holders,
                                              lease.queued_at or lease.created_at, lease.id or 0))


def place(line: Sequence[Lease], lease_id: int | None) -> int | None:
    """1-based place of a lease in the line, None when it is not in it."""
    return next((n for n, lease in enumerate(line, 1) if lease.id == lease_id), None)


def per_host(gpus: Iterable[GpuInfo], model: str | None) -> dict[str, int]:
    """How many GPUs of ``model`` (any, when None) each host has, whatever their state."""
    counts: dict[str, int] = {}
    for gpu in gpus:
        if allocation.matches_model(gpu, model):
            counts[gpu.host] = counts.get(gpu.host, 0) + 1
    return counts


def could_ever_fit(gpus: Sequence[GpuInfo], *, count: int, model: str | None) -> bool:
    """Some host has ``count`` GPUs of the model at all (leased, busy or not): a
    request that fails this would wait forever, so it is refused instead."""
    return any(n >= count for n in per_host(gpus, model).values())


class Reservations:
    """One pass over the line: which hosts earlier, starving requests hold back."""

    def __init__(self, *, now: datetime, reserve_after: timedelta) -> None:
        self.now, self.reserve_after = now, reserve_after
        self.hosts: set[str] = set()

    def usable(self, gpus: Sequence[GpuInfo]) -> list[GpuInfo]:
        """The GPUs the next request in line may be given."""
        return [g for g in gpus if g.host not in self.hosts]

    def missed(self, lease: Lease, usable: Sequence[GpuInfo]) -> None:
        """``lease`` did not fit now: a large request that waited long enough reserves
        its best host from here on."""
        waited = self.now - (lease.queued_at or lease.created_at)
        if lease.gpu_count > 1 and waited >= self.reserve_after:
            host = _best_host(lease, usable)
            if host is not None:
                self.hosts.add(host)


def _best_host(lease: Lease, gpus: Sequence[GpuInfo]) -> str | None:
    counts = per_host(gpus, lease.gpu_model)
    return max(counts, key=lambda h: (counts[h], h)) if counts else None


def why_no_gpu(gpus: Sequence[GpuInfo], taken: set[str], lease: Lease,
                   busy_memory_bytes: int) -> str:
    """Why no GPU fits ``lease`` now: how many there are, and what each of the others is."""
    model = f" {lease.gpu_model}" if lease.gpu_model else ""
    matching = [g for g in gpus if allocation.matches_model(g, lease.gpu_model)]
    if lease.gpu_model and not matching:
        return f"There is no{model} GPU here. /gpu status lists the models."
    leased = sum(1 for g in matching if g.uuid in taken)
    busy = sum(1 for g in matching if g.uuid not in taken and g.healthy
               and not allocation.is_idle(g, busy_memory_bytes=busy_memory_bytes))
    sick = sum(1 for g in matching if not g.healthy)
    detail = ", ".join(f"{n} {what}" for n, what in ((leased, "leased"), (busy, "busy outside "
                       "gpubot"), (sick, "unhealthy")) if n)
    want = f"{lease.gpu_count}{model} GPUs" if lease.gpu_count > 1 else f"a{model} GPU"
    return (f"No GPU free for {want} right now ({len(matching)} in all"
            f"{': ' + detail if detail else ''}). /gpu status shows when leases end.")
