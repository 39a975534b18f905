"""The effects a lease owes, registered with the outbox: how each is performed, and
whether a redo after a crash still makes sense for the lease as it is then."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bot.db.engine import Session
from bot.db.repo import LeaseRepo
from bot.domain.containers import ContainerState
from bot.domain.lease import SYSTEM_ACTOR, Lease, LeaseStatus
from bot.ports import AccessInfo
from bot.services.keys import ssh_access
from bot.services.outbox import Effect, EffectKind, EffectType, Outbox
from bot.services.resources import Resources
from bot.services.routes import add_route, remove_route

log = logging.getLogger(__name__)
APPROVAL_TIMEOUT_REASON = "approval timed out"


def register_lease_effects(outbox: Outbox, res: Resources) -> None:
    horizon = outbox.horizon

    def ended_as(*statuses: LeaseStatus):  # type: ignore[no-untyped-def]
        def still_owed(lease: Lease, now: datetime) -> bool:
            return (lease.status in statuses and lease.ended_at is not None
                    and lease.ended_at >= now - horizon)
        return still_owed

    def stop(effect: Effect) -> None:
        res.runtime.stop(effect.lease.id or 0)  # the workspace stays

    def stopped(session: Session, lease_ids: list[int]) -> None:
        """A port is held until its container is confirmed gone, so that no new lease
        is given a port the old container still publishes."""
        LeaseRepo(session).free_ports(lease_ids)

    def access(effect: Effect) -> None:
        lease = effect.lease
        if lease.password_token:
            password = res.vault.decrypt(lease.password_token)
            res.notifier.access_ready(lease, AccessInfo(
                url=res.config.url(lease),
                password=password, ssh=ssh_access(res, lease, password)))

    def claim_failed(effect: Effect) -> None:
        res.notifier.claim_failed(effect.lease, effect.lease.failure_reason
                                  or "Your environment could not be started.")

    def expired(effect: Effect) -> None:
        res.notifier.expired(effect.lease,
                             workspace=str(res.config.workspace(effect.lease.user_id)))

    def remind(effect: Effect) -> None:
        if effect.lease.expires_at is not None:
            res.notifier.reminder(effect.lease, effect.lease.expires_at - res.clock.now())

    def died(effect: Effect) -> None:
        res.notifier.container_died(effect.lease, ContainerState.from_json(effect.detail))

    def queue_timed_out(effect: Effect) -> None:
        res.notifier.queue_timed_out(effect.lease)

    def idle_warning(effect: Effect) -> None:
        res.notifier.idle_warning(effect.lease, datetime.fromisoformat(effect.detail or ""))

    def idle_reclaimed(effect: Effect) -> None:
        res.notifier.idle_reclaimed(effect.lease,
                                    workspace=str(res.config.workspace(effect.lease.user_id)))

    def time_limit(effect: Effect) -> None:
        if effect.lease.expires_at is not None:
            res.runtime.set_end(effect.lease.id or 0, effect.lease.expires_at)

    def withdrawn(effect: Effect) -> None:
        res.notifier.approval_withdrawn(effect.lease)

    def still_warned(lease: Lease, now: datetime) -> bool:
        return lease.status is LeaseStatus.ACTIVE and lease.idle_warned_at is not None

    def decided(effect: Effect) -> None:
        lease = effect.lease
        res.notifier.approval_decided(lease, approved=lease.status is not LeaseStatus.DENIED,
                                      by=lease.decision_by or SYSTEM_ACTOR,
                                      reason=lease.decision_reason)

    def running(lease: Lease, now: datetime) -> bool:
        return lease.status is LeaseStatus.ACTIVE

    def before_expiry(lease: Lease, now: datetime) -> bool:
        return (lease.status is LeaseStatus.ACTIVE and lease.expires_at is not None
                and lease.expires_at > now)

    def decision_stands(lease: Lease, now: datetime) -> bool:
        return lease.decision_by is not None

    ended = ended_as(LeaseStatus.RELEASED, LeaseStatus.EXPIRED, LeaseStatus.FAILED)
    for kind, effect_type in {
        EffectKind.STOP: EffectType(stop, ended, on_done=stopped),
        EffectKind.ACCESS: EffectType(access, running),
        EffectKind.CLAIM_FAILED: EffectType(claim_failed, ended_as(LeaseStatus.FAILED)),
        EffectKind.EXPIRE: EffectType(expired, ended_as(LeaseStatus.EXPIRED)),
        EffectKind.REMIND: EffectType(remind, before_expiry),
        EffectKind.CONTAINER_DIED: EffectType(died, ended_as(LeaseStatus.FAILED)),
        EffectKind.DECIDED: EffectType(decided, decision_stands),
        EffectKind.APPROVAL_TIMEOUT: EffectType(decided, ended_as(LeaseStatus.DENIED)),
        EffectKind.QUEUE_TIMEOUT: EffectType(queue_timed_out, ended_as(LeaseStatus.EXPIRED)),
        EffectKind.IDLE_WARNING: EffectType(idle_warning, still_warned),
        EffectKind.IDLE_RECLAIMED: EffectType(idle_reclaimed, ended_as(LeaseStatus.EXPIRED)),
        EffectKind.WITHDRAWN: EffectType(withdrawn, ended_as(LeaseStatus.RELEASED)),
        EffectKind.ROUTE_ADD: EffectType(lambda e: add_route(res, e.lease.id or 0), running),
        EffectKind.TIME_LIMIT: EffectType(time_limit, before_expiry),
        EffectKind.ROUTE_REMOVE: EffectType(lambda e: remove_route(res, e.lease.route_label),
                                            lambda lease, now: not lease.status.live),
    }.items():
        outbox.register(kind, effect_type)


def register_start(outbox: Outbox, start: Callable[[int], object]) -> None:
    """A lease granted from the queue starts after the grant commits (and again after a
    crash: ``start`` is idempotent)."""
    outbox.register(EffectKind.START, EffectType(
        lambda effect: start(effect.lease.id or 0),
        lambda lease, now: lease.status is LeaseStatus.STARTING))
