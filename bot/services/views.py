"""Read models for `/gpu status`, `/gpu mine`, App Home and `gpubot leases`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from bot.db.queue import QueueRepo
from bot.db.repo import LeaseRepo
from bot.domain import queue as line_rules
from bot.domain import allocation
from bot.domain.durations import format_duration
from bot.domain.gpus import GpuInfo, gpu_label
from bot.domain.lease import OPEN, Lease
from bot.domain.queue import why_no_gpu
from bot.services.resources import Resources


@dataclass(frozen=True)
class LeaseRow:
    lease: Lease
    gpu_labels: tuple[str, ...]
    place: int | None = None  # in the queue, for a queued lease

    def time_left(self, now: datetime) -> str:
        left = self.lease.remaining(now)
        if left is None:
            return "-"
        return format_duration(left) if left.total_seconds() > 0 else "due"


class GpuState(str, Enum):
    FREE = "free"
    LEASED = "leased"
    BUSY = "busy"  # used outside gpubot
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class GpuRow:
    gpu: GpuInfo
    state: GpuState
    lease: Lease | None


def list_leases(res: Resources, *, include_ended: bool = False, user_id: str | None = None,
                gpus: list[GpuInfo] | None = None) -> list[LeaseRow]:
    with res.db.transaction() as session:
        repo = LeaseRepo(session)
        queue = QueueRepo(session)
        line = line_rules.ordered(queue.waiting(), holders=queue.holders())
        if user_id:
            leases = repo.open_for_user(user_id)
        elif include_ended:
            leases = repo.recent(limit=200)  # newest first, as `gpubot leases --all` says
        else:
            leases = repo.with_status(*OPEN)
    by_uuid = {g.uuid: g for g in (gpus if gpus is not None else _safe_gpus(res))}
    return [LeaseRow(lease, tuple(gpu_label(u, by_uuid) for u in lease.gpu_uuids),
                     line_rules.place(line, lease.id)) for lease in leases]


def waiting(res: Resources) -> int:
    with res.db.transaction() as session:
        return len(QueueRepo(session).waiting())


def gpu_table(res: Resources) -> list[GpuRow]:
    gpus = res.inventory.list_gpus()
    with res.db.transaction() as session:
        holders = {u: lease for lease in LeaseRepo(session).live() for u in lease.gpu_uuids}
    busy_bytes = res.config.busy_memory_bytes
    rows = []
    for gpu in gpus:
        lease = holders.get(gpu.uuid)
        if lease is not None:
            state = GpuState.LEASED
        elif not gpu.healthy:
            state = GpuState.UNHEALTHY
        elif not allocation.is_idle(gpu, busy_memory_bytes=busy_bytes):
            state = GpuState.BUSY
        else:
            state = GpuState.FREE
        rows.append(GpuRow(gpu, state, lease))
    return rows


def why_waiting(res: Resources, lease: Lease) -> str:
    """Why a queued request is not granted now, in the words a refusal used to have."""
    gpus = _safe_gpus(res)
    with res.db.transaction() as session:
        taken = LeaseRepo(session).taken_gpus()
    return why_no_gpu(gpus, taken, lease, res.config.busy_memory_bytes)


def _safe_gpus(res: Resources) -> list[GpuInfo]:
    try:
        return res.inventory.list_gpus()
    except Exception:  # a listing must work even when NVML does not
        return []
