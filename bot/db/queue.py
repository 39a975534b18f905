"""The line's rows: queued leases (they hold nothing) and who holds GPUs now."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.tables import leases
from bot.domain.lease import LIVE, Lease, LeaseStatus


class QueueRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    def waiting(self) -> list[Lease]:
        return list(self.s.scalars(select(Lease).where(leases.c.status == LeaseStatus.QUEUED)
                                   .order_by(leases.c.queued_at, leases.c.id)))

    def lock_waiting(self) -> list[Lease]:
        """The queued leases no other transaction holds, locked: two bot processes never
        grant one place twice."""
        return list(self.s.scalars(
            select(Lease).where(leases.c.status == LeaseStatus.QUEUED)
            .order_by(leases.c.queued_at, leases.c.id).with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)))

    def holders(self) -> set[str]:
        """Users holding a GPU now (a live lease)."""
        return set(self.s.scalars(select(leases.c.user_id).where(leases.c.status.in_(LIVE))
                                  .distinct()))
