"""The lease and its state machine.

::

    queued ─────grant──────┐
      ▲  └─▶ released | expired (left the line, or waited too long)
      │ approve, no GPU free
    pending_approval ──approve──▶ starting ──ready──▶ active ──▶ released | expired | failed
          │                          │
          └─▶ denied | released      └─▶ failed | released | expired

A GPU and a port are held only while a lease is *live* (``starting`` or ``active``):
the GPU is chosen when the lease is granted (at claim time, at approval time, or when
its turn in the queue comes), so a request that waits reserves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from bot.domain.actors import ACTORS, CLI_ACTOR, SYSTEM_ACTOR  # noqa: F401 (re-exported)
from bot.domain.errors import InvalidTransition




def container_name(lease_id: int) -> str:
    """The name of a lease's container (DESIGN §4)."""
    return f"gpubot-{lease_id}"


class EndReason(str, Enum):
    """Why a lease ended, finer than its status (receipts and messages say it)."""

    RELEASED = "released"
    EXPIRED = "expired"
    START_FAILED = "start_failed"
    CONTAINER_DIED = "container_died"
    DENIED = "denied"
    APPROVAL_TIMEOUT = "approval_timeout"
    LEFT_QUEUE = "left_queue"
    QUEUE_TIMEOUT = "queue_timeout"
    IDLE = "idle"
    HOST_LOST = "host_lost"


class LeaseStatus(str, Enum):
    QUEUED = "queued"
    PENDING_APPROVAL = "pending_approval"
    STARTING = "starting"
    ACTIVE = "active"
    RELEASED = "released"
    EXPIRED = "expired"
    DENIED = "denied"
    FAILED = "failed"

    @property
    def live(self) -> bool:
        """Holds a GPU and a port."""
        return self in LIVE

    @property
    def open(self) -> bool:
        """Not finished: live, queued, or waiting for an admin."""
        return self in OPEN

    @property
    def terminal(self) -> bool:
        return self not in OPEN


S = LeaseStatus
LIVE = frozenset({S.STARTING, S.ACTIVE})
OPEN = LIVE | {S.PENDING_APPROVAL, S.QUEUED}
TRANSITIONS: dict[LeaseStatus, frozenset[LeaseStatus]] = {
    S.QUEUED: frozenset({S.STARTING, S.RELEASED, S.EXPIRED}),
    S.PENDING_APPROVAL: frozenset({S.STARTING, S.QUEUED, S.DENIED, S.RELEASED}),
    S.STARTING: frozenset({S.ACTIVE, S.FAILED, S.RELEASED, S.EXPIRED}),
    S.ACTIVE: frozenset({S.RELEASED, S.EXPIRED, S.FAILED}),
    S.RELEASED: frozenset(),
    S.EXPIRED: frozenset(),
    S.DENIED: frozenset(),
    S.FAILED: frozenset(),
}


@dataclass(eq=False)
class Lease:
    user_id: str
    duration: timedelta
    created_at: datetime
    gpu_count: int = 1
    gpu_model: str | None = None
    status: LeaseStatus = LeaseStatus.STARTING
    id: int | None = None
    host: str | None = None
    gpu_uuids: tuple[str, ...] = ()
    port: int | None = None
    container_id: str | None = None
    container_name: str | None = None
    started_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    password_token: str | None = field(default=None, repr=False)  # Fernet ciphertext
    reminders_sent: str = ""  # comma-separated offsets in seconds, see reminders.py
    decision_by: str | None = None
    decision_reason: str | None = None
    failure_reason: str | None = None
    channel_id: str | None = None  # where the claim was typed
    queued_at: datetime | None = None  # when it joined the line
    heartbeat_at: datetime | None = None  # the process starting it is alive
    idle_since: datetime | None = None  # GPUs idle and Jupyter quiet since
    idle_warned_at: datetime | None = None
    snoozed_until: datetime | None = None  # "I'm still using it"
    util_sum: int = 0  # sum of GPU utilization samples (percent)
    util_samples: int = 0
    util_peak: int = 0
    mem_peak_mib: int = 0
    idle_samples: int = 0
    idle_exempt: bool = False  # an admin exempted it from idle reclaim
    end_reason: str | None = None  # EndReason value: why it ended
    environment: str | None = None  # GPUBOT_ENVIRONMENTS name; None: the default
    route_label: str | None = None  # its proxy host label (random)
    address: str | None = None  # where its Jupyter answers when not on this host (a node)
    ssh_port: int | None = None
    host_key_fingerprint: str | None = None

    def transition(self, to: LeaseStatus, *, at: datetime) -> None:
        if to not in TRANSITIONS[self.status]:
            raise InvalidTransition(
                f"Lease {self.id} is {self.status.value}; it cannot become {to.value}."
            )
        self.status = to
        if to.terminal:
            self.ended_at = at

    @property
    def mean_utilization(self) -> float | None:
        return self.util_sum / self.util_samples if self.util_samples else None

    def remaining(self, now: datetime) -> timedelta | None:
        return None if self.expires_at is None else self.expires_at - now
