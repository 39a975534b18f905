"""The lease and its state machine.

::

    pending_approval ──approve──▶ starting ──ready──▶ active ──▶ released | expired | failed
          │                          │
          └─▶ denied | released      └─▶ failed | released

A GPU and a port are held only while a lease is *live* (``starting`` or ``active``):
the GPU is chosen when the lease is granted (at claim time, or at approval time for
claims that need an admin), so a request waiting for approval reserves nothing.
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


class LeaseStatus(str, Enum):
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
        """Not finished: live or waiting for an admin."""
        return self in OPEN

    @property
    def terminal(self) -> bool:
        return self not in OPEN


S = LeaseStatus
LIVE = frozenset({S.STARTING, S.ACTIVE})
OPEN = LIVE | {S.PENDING_APPROVAL}
TRANSITIONS: dict[LeaseStatus, frozenset[LeaseStatus]] = {
    S.PENDING_APPROVAL: frozenset({S.STARTING, S.DENIED, S.RELEASED}),
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

    def transition(self, to: LeaseStatus, *, at: datetime) -> None:
        if to not in TRANSITIONS[self.status]:
            raise InvalidTransition(
                f"Lease {self.id} is {self.status.value}; it cannot become {to.value}."
            )
        self.status = to
        if to.terminal:
            self.ended_at = at

    def remaining(self, now: datetime) -> timedelta | None:
        return None if self.expires_at is None else self.expires_at - now
