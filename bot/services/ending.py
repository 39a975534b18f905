"""The one way a lease ends: release, expiry, start failure, container death, denial,
approval timeout.

``LeaseEnder.end`` runs inside the caller's transaction: it moves each lease to its end
state, frees its GPUs, writes the audit row, and owes the effects (the container stop,
which also frees the port once the container is gone, and the holder's message). Once
that transaction commits, every *capacity freed* listener hears which host has GPUs
free again: the hook the queue hangs on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.db.engine import Session, after_commit
from bot.db.repo import LeaseRepo
from bot.domain.lease import EndReason, Lease, LeaseStatus
from bot.services.outbox import Effect, EffectKind, Outbox

log = logging.getLogger(__name__)
CapacityListener = Callable[[str], object]  # the host whose GPUs were freed


@dataclass(frozen=True)
class Ending:
    """One lease to end, and how."""

    lease: Lease
    to: LeaseStatus
    why: EndReason
    notice: EffectKind | None = None  # the message its holder is owed, if any
    reason: str | None = None  # failure or decision reason
    detail: str | None = None  # kept with the notice's intent


@dataclass(frozen=True)
class AuditAs:
    actor: str
    action: str


class LeaseEnder:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._listeners: list[CapacityListener] = []

    def on_capacity_freed(self, listener: CapacityListener) -> None:
        self._listeners.append(listener)

    def end(self, session: Session, endings: Sequence[Ending], *, now: datetime,
            audit: AuditAs | None = None) -> list[Lease]:
        """End these leases in ``session``'s transaction (bulk statements however many);
        returns them. The caller has locked and re-checked each."""
        if not endings:
            return []
        repo = LeaseRepo(session)
        freed: list[Lease] = []
        effects: list[Effect] = []
        for ending in endings:
            lease = ending.lease
            was_live = lease.status.live
            lease.transition(ending.to, at=now)
            lease.end_reason = ending.why.value
            lease.password_token = None  # nothing can log in any more: keep no secret
            if ending.to is LeaseStatus.FAILED:
                lease.failure_reason = ending.reason
            elif ending.to is LeaseStatus.DENIED:
                lease.decision_reason = ending.reason
            if was_live:
                freed.append(lease)
                if lease.route_label:  # its HTTPS host goes first: no 502 while it stops
                    effects.append(Effect(EffectKind.ROUTE_REMOVE, lease))
                effects.append(Effect(EffectKind.STOP, lease))
            if ending.notice is not None:
                effects.append(Effect(ending.notice, lease, ending.detail))
            if audit is not None:
                repo.audit(at=now, actor=audit.actor, action=audit.action, lease_id=lease.id,
                           detail=ending.reason)
        repo.free_gpus([lease.id or 0 for lease in freed])
        self.outbox.owe(session, effects)
        hosts = sorted({lease.host for lease in freed if lease.host})
        if hosts:
            after_commit(session, lambda: self._capacity_freed(hosts))
        return [ending.lease for ending in endings]

    def _capacity_freed(self, hosts: Sequence[str]) -> None:
        for host in hosts:
            for listener in self._listeners:
                try:
                    listener(host)
                except Exception:  # a listener's failure is its own; the lease has ended
                    log.exception("capacity-freed listener %r failed", listener)
