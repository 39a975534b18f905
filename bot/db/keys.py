"""A person's SSH public keys (``ssh_keys``), over one Session, and the leases they open."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from bot.db.tables import leases, ssh_keys
from bot.domain.lease import LIVE, Lease
from bot.domain.ssh import SavedKey


class KeyRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    def of_user(self, user_id: str) -> list[SavedKey]:
        """Oldest first: ``/gpu key remove <n>`` counts in this order."""
        query = (select(ssh_keys).where(ssh_keys.c.user_id == user_id)
                 .order_by(ssh_keys.c.added_at, ssh_keys.c.id))
        return [SavedKey(r.id, n, r.public_key, r.fingerprint, r.comment or "", r.added_at)
                for n, r in enumerate(self.s.execute(query), start=1)]

    def add(self, user_id: str, *, public_key: str, fingerprint: str, comment: str,
            now: datetime) -> None:
        """The user row must exist (``LeaseRepo.lock_user``)."""
        self.s.execute(insert(ssh_keys).values(user_id=user_id, public_key=public_key,
                                               fingerprint=fingerprint, comment=comment or None,
                                               added_at=now))

    def remove(self, key_id: int) -> None:
        self.s.execute(delete(ssh_keys).where(ssh_keys.c.id == key_id))

    def live_ssh_leases(self, user_id: str) -> list[Lease]:
        """The user's live leases that run sshd: their authorized keys follow changes."""
        query = select(Lease).where(leases.c.user_id == user_id, leases.c.status.in_(LIVE),
                                    leases.c.ssh_port.is_not(None)).order_by(leases.c.id)
        return list(self.s.scalars(query))
