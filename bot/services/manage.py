"""Release, extend, approve, deny, and re-send access.

Each use case is one transaction over row-locked leases; effects outside the database
(stopping a container, messages) happen after the commit, and are repeated safely by
the reconciler if the bot dies in between.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.orm import Session

from bot.db.repo import LeaseRepo
from bot.domain import reminders
from bot.domain.durations import format_duration
from bot.domain.errors import AlreadyDecided, DomainError, LeaseNotFound, NotAllowed
from bot.domain.lease import SYSTEM_ACTOR, Lease, LeaseStatus, mention
from bot.ports import AccessInfo
from bot.services.claim import ClaimService
from bot.services.deps import Deps

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
            raise LeaseNotFound(f"You have no lease {lease_id}. `/gpu mine` lists yours.") \
                from None
        if lease.user_id != user_id and not is_admin:
            raise LeaseNotFound(f"You have no lease {lease_id}. `/gpu mine` lists yours.")
        return lease
    mine = repo.open_for_user(user_id)
    if not mine:
        raise LeaseNotFound("You have no open lease. Claim one with `/gpu claim 24h`.")
    if len(mine) > 1:
        ids = ", ".join(str(lease.id) for lease in mine)
        raise DomainError(f"You have {len(mine)} open leases ({ids}); say which one, "
                          f"e.g. `{mine[0].id}`.")
    return repo.get(mine[0].id, lock=True) if lock else mine[0]


class ManageService:
    def __init__(self, deps: Deps, claims: ClaimService) -> None:
        self.d = deps
        self.claims = claims

    def release(self, *, user_id: str, lease_id: int | None = None,
                as_admin: bool = False) -> Lease:
        """End a lease; ``as_admin`` is for the host's own CLI (``gpubot release``)."""
        d, now = self.d, self.d.clock.now()
        with d.db.transaction() as session:
            repo = LeaseRepo(session)
            lease = resolve(repo, user_id=user_id, lease_id=lease_id,
                            is_admin=as_admin or d.policy.is_admin(user_id), lock=True)
            if not lease.status.open:
                raise DomainError(f"Lease {lease.id} has already ended ({lease.status.value}).")
            was_live = lease.status.live
            lease.transition(LeaseStatus.RELEASED, at=now)
            repo.free_allocations(lease.id or 0)
            repo.audit(at=now, actor=user_id, action="release", lease_id=lease.id)
        if was_live:
            self._stop(lease)
        return lease

    def extend(self, *, user_id: str, duration: timedelta, lease_id: int | None = None) -> Lease:
        d, now = self.d, self.d.clock.now()
        is_admin = d.policy.is_admin(user_id)
        with d.db.transaction() as session:
            repo = LeaseRepo(session)
            lease = resolve(repo, user_id=user_id, lease_id=lease_id, is_admin=is_admin,
                            lock=True)
            if lease.status is not LeaseStatus.ACTIVE or lease.expires_at is None:
                raise DomainError(f"Lease {lease.id} is {lease.status.value}; only a running "
                                  f"lease can be extended.")
            new_total = lease.expires_at + duration - (lease.started_at or lease.created_at)
            d.policy.check_extension(new_total=new_total)
            if new_total > d.policy.approval_above and not is_admin:
                raise NotAllowed(
                    f"Leases longer than {format_duration(d.policy.approval_above)} need an "
                    f"admin; ask one to extend lease {lease.id}.")
            lease.expires_at = lease.expires_at + duration
            sent = reminders.parse_sent(lease.reminders_sent)
            lease.reminders_sent = reminders.format_sent(
                reminders.rearm(sent, remaining=lease.expires_at - now))
            repo.audit(at=now, actor=user_id, action="extend", lease_id=lease.id,
                       detail=str(duration))
        return lease

    def approve(self, *, lease_id: int, admin_id: str) -> Lease:
        """Grant a pending lease (the GPU is chosen now); call ``claims.start`` next.
        Two admins clicking at once: the row lock orders them, the second sees the
        decision already made and gets AlreadyDecided."""
        d, now = self.d, self.d.clock.now()
        d.policy.require_admin(admin_id)
        gpus = d.inventory.list_gpus()

        def work(session: Session) -> Lease:
            repo = LeaseRepo(session)
            lease = self._pending(repo, lease_id)
            self.claims.grant(repo, lease, gpus, now=now)
            lease.transition(LeaseStatus.STARTING, at=now)
            lease.decision_by = admin_id
            repo.audit(at=now, actor=admin_id, action="approve", lease_id=lease_id)
            return lease

        lease = d.db.run(work)
        d.notifier.approval_decided(lease, approved=True, by=admin_id, reason=None)
        return lease

    def deny(self, *, lease_id: int, admin_id: str, reason: str | None) -> Lease:
        d, now = self.d, self.d.clock.now()
        d.policy.require_admin(admin_id)
        with d.db.transaction() as session:
            repo = LeaseRepo(session)
            lease = self._pending(repo, lease_id)
            lease.transition(LeaseStatus.DENIED, at=now)
            lease.decision_by = admin_id
            lease.decision_reason = (reason or "").strip()[:500] or None
            repo.audit(at=now, actor=admin_id, action="deny", lease_id=lease_id,
                       detail=lease.decision_reason)
        d.notifier.approval_decided(lease, approved=False, by=admin_id,
                                    reason=lease.decision_reason)
        return lease

    def resend_access(self, *, user_id: str, lease_id: int | None = None) -> Lease:
        d = self.d
        with d.db.transaction() as session:
            lease = resolve(LeaseRepo(session), user_id=user_id, lease_id=lease_id)
        if lease.user_id != user_id:
            raise NotAllowed("Access details go only to the lease's holder.")
        if lease.status is not LeaseStatus.ACTIVE or not lease.password_token:
            raise DomainError(f"Lease {lease.id} is {lease.status.value}; there is no running "
                              f"Jupyter to log in to.")
        d.notifier.access_resend(lease, AccessInfo(url=d.config.url(lease.port or 0),
                                                   password=d.vault.decrypt(lease.password_token)))
        return lease

    @staticmethod
    def _pending(repo: LeaseRepo, lease_id: int) -> Lease:
        lease = repo.get(lease_id, lock=True)
        if lease.status is not LeaseStatus.PENDING_APPROVAL:
            by = "" if lease.decision_by is None else f" by {mention(lease.decision_by)}"
            if lease.decision_by == SYSTEM_ACTOR:
                by += " (nobody decided in time)"
            raise AlreadyDecided(f"Lease {lease_id} was already decided{by}: it is "
                                 f"{lease.status.value}.")
        return lease

    def _stop(self, lease: Lease) -> None:
        try:
            self.d.runtime.stop(lease.id or 0)
        except Exception:  # the reconciler removes containers without a live lease
            log.exception("lease %s: container stop failed; the reconciler will retry",
                          lease.id)
