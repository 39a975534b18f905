"""The scheduler's lease jobs: expiry, reminders, and container deaths.

Each job claims due leases under row locks (``bot.services.sweep``), re-checks them,
ends or marks them in that transaction and owes the effects through the outbox, so a
second bot process never does the same work twice and a crash leaves owed effects for
the reconciler. All methods are idempotent and safe to run concurrently.
"""

from __future__ import annotations

import logging
from datetime import datetime

from bot.db.engine import Session
from bot.db.sweeps import SweepRepo
from bot.domain import reminders
from bot.domain.containers import ContainerState, ContainerStatus, death_reason
from bot.domain.lease import EndReason, Lease, LeaseStatus
from bot.services.ending import Ending, LeaseEnder
from bot.services.outbox import Effect, EffectKind, Outbox
from bot.services.resources import Resources
from bot.services.sweep import sweep

log = logging.getLogger(__name__)


class LifecycleJobs:
    def __init__(self, res: Resources, outbox: Outbox, ender: LeaseEnder) -> None:
        self.res, self.outbox, self.ender = res, outbox, ender

    # ----------------------------------------------------------------- expiry
    def expire(self) -> int:
        """End every live lease whose time is up; its container stops (the workspace
        stays) and its holder is told. Returns how many leases this call expired."""
        now = self.res.clock.now()

        def due(lease: Lease) -> bool | None:
            return (lease.status.live and lease.expires_at is not None
                    and lease.expires_at <= now) or None

        def end(session: Session, decided: list[tuple[Lease, object]]) -> None:
            self.ender.end(session, [Ending(lease, LeaseStatus.EXPIRED, EndReason.EXPIRED,
                                            EffectKind.EXPIRE)
                                     for lease, _ in decided], now=now)

        return sweep(self.res.db, lambda repo, limit: repo.claim_expired(now=now, limit=limit),
                     due, end, batch_size=self.res.config.batch_size)

    # -------------------------------------------------------------- reminders
    def remind(self) -> int:
        """Send each due reminder offset once per lease (the nearest when several are
        due); ``LeaseCommands.extend`` re-arms offsets that lie ahead again."""
        now = self.res.clock.now()
        offsets = tuple(self.res.config.remind_before)
        if not offsets:
            return 0

        def due(lease: Lease) -> bool | None:
            if lease.status is not LeaseStatus.ACTIVE or lease.expires_at is None:
                return None
            offset, sent = reminders.due(offsets, remaining=lease.expires_at - now,
                                         sent=reminders.parse_sent(lease.reminders_sent))
            if offset is None:
                return None  # another process sent it (re-check after the lock)
            lease.reminders_sent = reminders.format_sent(sent)
            return True

        def owe(session: Session, decided: list[tuple[Lease, object]]) -> None:
            self.outbox.owe(session, [Effect(EffectKind.REMIND, lease) for lease, _ in decided])

        return sweep(self.res.db, lambda repo, limit: repo.claim_due_reminders(
            now=now, offsets=offsets, limit=limit), due, owe,
            batch_size=self.res.config.batch_size)

    # ------------------------------------------------------- container deaths
    def on_container_event(self, lease_id: int, state: ContainerState) -> Lease | None:
        """A Docker ``die``/``oom`` event for a lease's container. A running lease is
        failed at once and its holder told; returns it, or None when nothing changed
        (the lease already ended, is still starting, or the container runs again)."""
        if state.status in (ContainerStatus.RUNNING, ContainerStatus.STARTING):
            return None
        try:
            current = self.res.runtime.poll(lease_id)
        except Exception:  # the engine cannot answer: trust the event
            log.warning("lease %s: cannot poll its container; trusting the event", lease_id,
                        exc_info=True)
        else:
            if current.status is ContainerStatus.RUNNING:
                return None  # restarted meanwhile: not dead
            if state.exit_code is None and current.exit_code is not None:
                state = current
        failed = self.fail_dead({lease_id: state}, wait=True)
        return failed[0] if failed else None

    def fail_dead(self, states: dict[int, ContainerState], *, wait: bool = False) -> list[Lease]:
        """End ACTIVE leases whose container died as failed (the reason names the exit
        code or the OOM kill); the dead container goes and the holder is told. Leases no
        longer ACTIVE are left alone. ``wait``: block on a row lock held by another
        transaction instead of skipping that lease."""
        if not states:
            return []
        now: datetime = self.res.clock.now()

        def work(session: Session) -> list[Lease]:
            endings = [Ending(lease, LeaseStatus.FAILED, EndReason.CONTAINER_DIED,
                              EffectKind.CONTAINER_DIED,
                              reason=death_reason(states[lease.id or 0]),
                              detail=states[lease.id or 0].to_json())
                       for lease in SweepRepo(session).lock_active(states, wait=wait)
                       if lease.status is LeaseStatus.ACTIVE]
            return self.ender.end(session, endings, now=now)

        failed = self.res.db.run(work)
        for lease in failed:
            log.warning("lease %s failed: %s", lease.id, lease.failure_reason)
        return failed
