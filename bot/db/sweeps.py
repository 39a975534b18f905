"""The lifecycle's and the reconciler's queries: due leases claimed under row locks, and
the plain-id reads reconcile runs over every live lease.

Row claims use ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL (a second bot
process skips the rows the first one holds and, once it commits, no longer matches
them); SQLite's ``BEGIN IMMEDIATE`` already runs one writer at a time. Callers re-check
every claimed row in Python after the lock.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import CursorResult, and_, delete, exists, func, insert, literal, not_, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from bot.db.outbox import SYSTEM
from bot.db.tables import audit, gpu_allocations, leases, port_allocations
from bot.domain.lease import LIVE, Lease, LeaseStatus

RECOVER = "recover_start"  # audit action: one process took a stuck start's recovery


@dataclass(frozen=True)
class StartingRow:
    id: int
    created_at: datetime
    container_id: str | None
    granted_at: datetime | None
    heartbeat_at: datetime | None

    @property
    def last_sign_of_life(self) -> datetime:
        return self.heartbeat_at or self.granted_at or self.created_at


class SweepRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    # --------------------------------------------------------- due leases, locked
    def _claim(self, due: ColumnElement[bool], limit: int) -> list[Lease]:
        query = (select(Lease).where(due).order_by(leases.c.expires_at, leases.c.id)
                 .limit(limit).with_for_update(skip_locked=True)
                 .execution_options(populate_existing=True))
        return list(self.s.scalars(query))

    def claim_expired(self, *, now: datetime, limit: int) -> list[Lease]:
        return self._claim(and_(leases.c.status.in_(LIVE), leases.c.expires_at <= now), limit)

    def claim_due_reminders(self, *, now: datetime, offsets: Sequence[timedelta],
                            limit: int) -> list[Lease]:
        """Active leases with an offset that is due and not yet sent."""
        sent_csv = literal(",") + leases.c.reminders_sent + literal(",")
        unsent_and_due = [and_(leases.c.expires_at <= now + o,
                               not_(sent_csv.like(f"%,{int(o.total_seconds())},%")))
                          for o in offsets]
        return self._claim(and_(leases.c.status == LeaseStatus.ACTIVE, leases.c.expires_at > now,
                                or_(*unsent_and_due)), limit)

    def claim_stale_queued(self, *, queued_before: datetime, limit: int) -> list[Lease]:
        return self._claim(and_(leases.c.status == LeaseStatus.QUEUED,
                                leases.c.queued_at <= queued_before), limit)

    def claim_stale_approvals(self, *, created_before: datetime, limit: int) -> list[Lease]:
        return self._claim(and_(leases.c.status == LeaseStatus.PENDING_APPROVAL,
                                leases.c.created_at <= created_before), limit)

    def lock_active(self, ids: Collection[int], *, wait: bool) -> list[Lease]:
        """The active ones among ``ids``, locked; ``wait``: block on a row another
        transaction holds instead of skipping it."""
        query = (select(Lease).where(leases.c.id.in_(list(ids)),
                                     leases.c.status == LeaseStatus.ACTIVE)
                 .order_by(leases.c.id).with_for_update(skip_locked=not wait)
                 .execution_options(populate_existing=True))
        return list(self.s.scalars(query))

    def lock_any(self, ids: Collection[int]) -> dict[int, Lease]:
        query = (select(Lease).where(leases.c.id.in_(list(ids))).order_by(leases.c.id)
                 .with_for_update(skip_locked=True).execution_options(populate_existing=True))
        return {lease.id or 0: lease for lease in self.s.scalars(query)}

    # ------------------------------------------------------ reconcile, plain ids
    def live_ids(self) -> set[int]:
        return set(self.s.scalars(select(leases.c.id).where(leases.c.status.in_(LIVE))))

    def active_ids(self, *, host: str) -> list[int]:
        return list(self.s.scalars(select(leases.c.id).where(
            leases.c.status == LeaseStatus.ACTIVE, _here(host))))

    def starting(self, *, host: str) -> list[StartingRow]:
        granted = (select(func.min(gpu_allocations.c.allocated_at))
                   .where(gpu_allocations.c.lease_id == leases.c.id).scalar_subquery())
        rows = self.s.execute(select(leases.c.id, leases.c.created_at, leases.c.container_id,
                                     granted, leases.c.heartbeat_at).where(
            leases.c.status == LeaseStatus.STARTING, _here(host)))
        return [StartingRow(*row) for row in rows]

    def claim_recoveries(self, ids: Collection[int], *, now: datetime,
                         patience: timedelta) -> list[int]:
        """Lock these starting leases and take each recovery at most once per
        ``patience`` across all bot processes (a ``recover_start`` audit row)."""
        if not ids:
            return []
        locked = self.s.scalars(select(leases.c.id).where(
            leases.c.id.in_(list(ids)), leases.c.status == LeaseStatus.STARTING)
            .order_by(leases.c.id).with_for_update(skip_locked=True)).all()
        taken = set(self.s.scalars(select(audit.c.lease_id).where(
            audit.c.lease_id.in_(locked), audit.c.action == RECOVER,
            audit.c.at > now - patience)))
        mine = [i for i in locked if i not in taken]
        if mine:
            self.s.execute(insert(audit), [
                {"at": now, "actor": SYSTEM, "action": RECOVER, "lease_id": i} for i in mine])
        return mine

    def delete_stale_gpu_allocations(self) -> int:
        """GPU rows of leases that are not live (they should never exist)."""
        ended = exists().where(leases.c.id == gpu_allocations.c.lease_id,
                               leases.c.status.not_in(LIVE))
        result = self.s.execute(delete(gpu_allocations).where(ended))
        return result.rowcount if isinstance(result, CursorResult) else 0

    def ended_port_holders(self) -> set[int]:
        """Leases that ended but still hold a port (their container stop is owed)."""
        ended = exists().where(leases.c.id == port_allocations.c.lease_id,
                               leases.c.status.not_in(LIVE))
        return set(self.s.scalars(select(port_allocations.c.lease_id).where(ended)))


def _here(host: str) -> ColumnElement[bool]:
    return or_(leases.c.host.is_(None), leases.c.host == host)
