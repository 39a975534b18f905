"""A holder's commands on a lease: release, extend, re-send access.

Each is one transaction over the row-locked lease; what it owes outside the database
(the container stop) goes through the outbox.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.db.repo import LeaseRepo
from bot.domain import reminders
from bot.domain.durations import format_duration
from bot.domain.errors import DomainError, LeaseNotFound, NotAllowed
from bot.domain.lease import EndReason, Lease, LeaseStatus
from bot.ports import AccessInfo
from bot.services.ending import AuditAs, Ending, LeaseEnder
from bot.services.keys import ssh_access
from bot.services.outbox import Effect, EffectKind
from bot.services.resources import Resources

log = logging.getLogger(__name__)


def resolve(repo: LeaseRepo, *, user_id: str, lease_id: int | None, is_admin: bool = False,
            lock: bool = False) -> Lease:
    """The lease a command means: the one named (yours, unless you are an admin), or
    your only open one."""
    if lease_id is not None:
        try:
            lease = repo.get(lease_id, lock=lock)
        except LeaseNotFound:
            if is_admin:
                raise
            raise LeaseNotFound(f"You have no lease {lease_id}. /gpu mine lists yours.") \
                from None
        if lease.user_id != user_id and not is_admin:
            raise LeaseNotFound(f"You have no lease {lease_id}. /gpu mine lists yours.")
        return lease
    mine = repo.open_for_user(user_id)
    if not mine:
        raise LeaseNotFound("You have no open lease. Claim one with /gpu claim 24h.")
    if len(mine) > 1:
        ids = ", ".join(str(lease.id) for lease in mine)
        raise DomainError(f"You have {len(mine)} open leases ({ids}); say which one, "
                          f"e.g. {mine[0].id}.")
    return repo.get(mine[0].id, lock=True) if lock else mine[0]


class LeaseCommands:
    def __init__(self, res: Resources, ender: LeaseEnder) -> None:
        self.res, self.ender = res, ender

    def release(self, *, user_id: str, lease_id: int | None = None,
                as_admin: bool = False) -> Lease:
        """End a lease; ``as_admin`` is for the host's own CLI (``gpubot release``)."""
        res, now = self.res, self.res.clock.now()
        with res.db.transaction() as session:
            repo = LeaseRepo(session)
            lease = resolve(repo, user_id=user_id, lease_id=lease_id,
                            is_admin=as_admin or res.policy.is_admin(user_id), lock=True)
            if not lease.status.open:
                raise DomainError(f"Lease {lease.id} has already ended ({lease.status.value}).")
            withdrawn = lease.status is LeaseStatus.PENDING_APPROVAL  # admins see it go
            self.ender.end(session, [Ending(lease, LeaseStatus.RELEASED, EndReason.RELEASED,
                                            EffectKind.WITHDRAWN if withdrawn else None)],
                           now=now, audit=AuditAs(user_id, "release"))
        return lease

    def extend(self, *, user_id: str, duration: timedelta, lease_id: int | None = None) -> Lease:
        res, now = self.res, self.res.clock.now()
        is_admin = res.policy.is_admin(user_id)
        with res.db.transaction() as session:
            repo = LeaseRepo(session)
            lease = resolve(repo, user_id=user_id, lease_id=lease_id, is_admin=is_admin,
                            lock=True)
            if lease.status is not LeaseStatus.ACTIVE or lease.expires_at is None:
                raise DomainError(f"Lease {lease.id} is {lease.status.value}; only a running "
                                  f"lease can be extended.")
            started = lease.started_at or lease.created_at
            new_end = res.policy.extended_expiry(started_at=started, expires_at=lease.expires_at,
                                                 duration=duration)
            if new_end - started > res.policy.approval_above and not is_admin:
                raise NotAllowed(
                    f"Leases longer than {format_duration(res.policy.approval_above)} need an "
                    f"admin; ask one to extend lease {lease.id}.")
            lease.expires_at = new_end
            sent = reminders.parse_sent(lease.reminders_sent)
            lease.reminders_sent = reminders.format_sent(
                reminders.rearm(sent, remaining=lease.expires_at - now))
            repo.audit(at=now, actor=user_id, action="extend", lease_id=lease.id,
                       detail=str(duration))
            self.ender.outbox.owe(session, [Effect(EffectKind.TIME_LIMIT, lease)])
        return lease

    def resend_access(self, *, user_id: str, lease_id: int | None = None) -> Lease:
        res = self.res
        with res.db.transaction() as session:
            lease = resolve(LeaseRepo(session), user_id=user_id, lease_id=lease_id)
        if lease.user_id != user_id:
            raise NotAllowed("Access details go only to the lease's holder.")
        if lease.status is not LeaseStatus.ACTIVE or not lease.password_token:
            raise DomainError(f"Lease {lease.id} is {lease.status.value}; there is no running "
                              f"Jupyter to log in to.")
        password = res.vault.decrypt(lease.password_token)
        res.notifier.access_resend(lease, AccessInfo(
            url=res.config.url(lease),
            password=password, ssh=ssh_access(res, lease, password)))
        return lease
