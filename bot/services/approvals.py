"""Admins approve or deny requests that the policy holds back."""

from __future__ import annotations

from bot.db.engine import Session
from bot.db.repo import LeaseRepo
from bot.domain.errors import AlreadyDecided, NoGpuFree
from bot.domain.lease import EndReason, Lease, LeaseStatus
from bot.services.ending import AuditAs, Ending, LeaseEnder
from bot.services.grant import Granter
from bot.services.outbox import Effect, EffectKind, Outbox
from bot.services.queue import QueueService
from bot.services.resources import Resources


class ApprovalService:
    def __init__(self, res: Resources, granter: Granter, outbox: Outbox,
                 ender: LeaseEnder, queue: QueueService) -> None:
        self.res, self.granter, self.outbox, self.ender = res, granter, outbox, ender
        self.queue = queue

    def approve(self, *, lease_id: int, admin_id: str) -> Lease:
        """Grant a pending lease (the GPU is chosen now); call ``ClaimService.start``
        next. With no GPU free it joins the queue. Two admins clicking at once: the row
        lock orders them, the second sees the decision already made (AlreadyDecided)."""
        res, now = self.res, self.res.clock.now()
        res.policy.require_admin(admin_id)
        gpus = res.inventory.list_gpus()

        def work(session: Session) -> Lease:
            repo = LeaseRepo(session)
            lease = _pending(repo, lease_id)
            lease.decision_by = admin_id
            try:
                with session.begin_nested():  # a refused grant writes nothing
                    self.granter.grant(repo, lease, gpus, now=now)
                lease.transition(LeaseStatus.STARTING, at=now)
            except NoGpuFree:
                self.queue.enqueue(session, lease, gpus)
            repo.audit(at=now, actor=admin_id, action="approve", lease_id=lease_id)
            self.outbox.owe(session, [Effect(EffectKind.DECIDED, lease)])
            return lease

        return res.db.run(work)

    def deny(self, *, lease_id: int, admin_id: str, reason: str | None) -> Lease:
        res, now = self.res, self.res.clock.now()
        res.policy.require_admin(admin_id)
        with res.db.transaction() as session:
            lease = _pending(LeaseRepo(session), lease_id)
            lease.decision_by = admin_id
            self.ender.end(session, [Ending(lease, LeaseStatus.DENIED, EndReason.DENIED, EffectKind.DECIDED,
                                            reason=(reason or "").strip()[:500] or None)],
                           now=now, audit=AuditAs(admin_id, "deny"))
        return lease


def _pending(repo: LeaseRepo, lease_id: int) -> Lease:
    lease = repo.get(lease_id, lock=True)
    if lease.status is not LeaseStatus.PENDING_APPROVAL:
        raise AlreadyDecided(lease_id=lease_id, status=lease.status.value,
                             decided_by=lease.decision_by)
    return lease
