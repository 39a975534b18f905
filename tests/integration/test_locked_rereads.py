"""A decision made after a row lock sees the row as it is once the lock is granted, not as
this transaction first read it (PostgreSQL, READ COMMITTED). Issue 11.9."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from bot.db import migrate
from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.domain.errors import DomainError
from bot.domain.lease import Lease, LeaseStatus
from tests.fakes.services import build_harness

H = timedelta(hours=1)
pytestmark = pytest.mark.postgres


def test_extend_racing_the_expiry_sees_the_expiry(pg_url: str) -> None:
    migrate.upgrade(pg_url)
    db = Database(pg_url)
    try:
        kit = build_harness(db)
        lease = kit.claims.start(kit.claims.claim(user_id="U1", duration=H).id or 0)
        kit.clock.advance(H)
        locked, go_on = threading.Event(), threading.Event()

        def expire_slowly() -> None:  # the expiry job, holding the row lock a while
            with db.transaction() as session:
                due = LeaseRepo(session).get(lease.id or 0, lock=True)
                due.transition(LeaseStatus.EXPIRED, at=kit.clock.now())
                locked.set()
                assert go_on.wait(10)

        outcome: dict[str, object] = {}

        def extend() -> None:  # reads the lease unlocked first (resolve), then locks it
            try:
                outcome["lease"] = kit.leases.extend(user_id="U1", duration=4 * H)
            except DomainError as error:
                outcome["error"] = error.message

        expiry = threading.Thread(target=expire_slowly)
        expiry.start()
        assert locked.wait(10)
        extension = threading.Thread(target=extend)
        extension.start()
        time.sleep(0.5)  # the extension now waits for the row lock
        go_on.set()
        expiry.join(10)
        extension.join(10)
        assert "lease" not in outcome, f"extended an expired lease: {outcome}"
        assert "expired" in str(outcome["error"])
        final: Lease = db.run(lambda s: LeaseRepo(s).get(lease.id or 0))
        assert final.status is LeaseStatus.EXPIRED and final.expires_at == kit.clock.now()
    finally:
        db.dispose()
