"""Slack is never called while a transaction holds the database (issue 11.7), and a
decision DM that Slack refuses does not abort the approved start (issue 11.11)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from bot.db import migrate
from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.domain.errors import MessageDelayed
from bot.domain.lease import LeaseStatus as S
from tests.fakes.services import build_harness

H = timedelta(hours=1)


def test_a_release_does_not_wait_behind_a_slow_admin_alert(sqlite_url: str) -> None:
    """On SQLite a write waits for every open write transaction: an admin alert sent from
    inside the grant's transaction made a release wait for Slack's retries."""
    migrate.upgrade(sqlite_url)
    db = Database(sqlite_url)
    kit = build_harness(db)
    held = kit.claims.start(kit.claims.claim(user_id="U1", duration=H).id or 0)
    kit.inventory.make_busy(3)  # someone runs outside gpubot: the next grant alerts
    alerting, release_alert = threading.Event(), threading.Event()

    def slow_alert(text: str) -> None:
        alerting.set()
        assert release_alert.wait(10)

    kit.notifier.admin_alert = slow_alert  # type: ignore[method-assign]
    claimer = threading.Thread(target=kit.claims.claim,
                               kwargs={"user_id": "U2", "duration": H})
    claimer.start()
    try:
        assert alerting.wait(10)
        started = time.monotonic()
        kit.leases.release(user_id="U1", lease_id=held.id)
        waited = time.monotonic() - started
    finally:
        release_alert.set()
        claimer.join(10)
    assert waited < 1.0, f"the release waited {waited:.1f} s behind the alert"
    assert db.run(lambda s: LeaseRepo(s).get(held.id or 0).status) is S.RELEASED
    db.dispose()


def test_a_refused_decision_dm_does_not_abort_the_approved_start(db: Database) -> None:
    kit = build_harness(db)
    pending = kit.claims.claim(user_id="U1", duration=H, gpu_count=2)
    real = kit.notifier.approval_decided
    calls: list[int | None] = []

    def rate_limited(lease, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(lease.id)
        if len(calls) == 1:
            raise MessageDelayed("Slack is rate-limiting gpubot right now")
        real(lease, **kwargs)

    kit.notifier.approval_decided = rate_limited  # type: ignore[method-assign]
    approved = kit.approvals.approve(lease_id=pending.id or 0, admin_id="UADMIN1")
    started = kit.claims.start(approved.id or 0)
    assert started.status is S.ACTIVE and kit.notifier.of("approval_decided") == []
    kit.clock.advance(kit.res.config.effect_retry_after)
    kit.reconciler.run()
    [decided] = kit.notifier.of("approval_decided")
    assert decided.lease_id == pending.id and decided.data["approved"] is True
