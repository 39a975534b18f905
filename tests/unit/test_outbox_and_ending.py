"""The outbox's registry and the one way a lease ends, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.db.tables import audit
from bot.domain.lease import LeaseStatus as S
from bot.services.outbox import Effect, EffectKind, Outbox, UnknownEffect
from tests.fakes.clock import FakeClock
from tests.fakes.lifecycle import CountingRuntime
from tests.fakes.services import Harness, build_harness

H = timedelta(hours=1)


@pytest.fixture
def kit(db: Database) -> Harness:
    return build_harness(db, runtime=CountingRuntime())


def audit_rows(db: Database) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(audit)) or 0


def test_an_unregistered_kind_is_refused_when_written_and_nothing_commits(kit: Harness) -> None:
    db = kit.res.db
    lease = kit.claims.start(kit.claims.claim(user_id="U1", duration=H).id or 0)
    bare = Outbox(db, FakeClock(), retry_after=H, horizon=24 * H)  # nothing registered
    before = audit_rows(db)
    with pytest.raises(UnknownEffect, match="remind"):
        with db.transaction() as session:
            LeaseRepo(session).get(lease.id or 0, lock=True).reminders_sent = "3600"
            bare.owe(session, [Effect(EffectKind.REMIND, lease)])
    assert audit_rows(db) == before
    assert kit.res.db.run(lambda s: LeaseRepo(s).get(lease.id or 0).reminders_sent) == ""


def test_every_kind_has_a_registered_effect(kit: Harness) -> None:
    assert set(kit.gpubot.outbox.kinds) == {kind.value for kind in EffectKind}


def test_effects_follow_the_commit_never_a_rollback(kit: Harness) -> None:
    lease = kit.claims.start(kit.claims.claim(user_id="U1", duration=H).id or 0)
    outbox, db = kit.gpubot.outbox, kit.res.db
    with pytest.raises(RuntimeError):
        with db.transaction() as session:
            outbox.owe(session, [Effect(EffectKind.REMIND, lease)])
            raise RuntimeError("rolled back")
    assert kit.notifier.of("reminder") == []
    with db.transaction() as session:
        outbox.owe(session, [Effect(EffectKind.REMIND, lease)])
        assert kit.notifier.of("reminder") == [], "not before the commit"
    assert [s.lease_id for s in kit.notifier.of("reminder")] == [lease.id]


def test_capacity_freed_is_heard_once_per_end_after_the_commit(kit: Harness) -> None:
    heard: list[tuple[str, int]] = []
    kit.gpubot.ender.on_capacity_freed(
        lambda host: heard.append((host, kit.res.db.run(
            lambda s: LeaseRepo(s).allocation_counts()[0]))))
    released = kit.claims.start(kit.claims.claim(user_id="U1", duration=H).id or 0)
    expiring = kit.claims.start(kit.claims.claim(user_id="U2", duration=H).id or 0)
    kit.runtime.fail_next_start()
    kit.claims.start(kit.claims.claim(user_id="U3", duration=H).id or 0)  # a start failure
    assert heard == [("gpu-host-1", 2)]  # the GPU was already free when we heard
    kit.leases.release(user_id="U1", lease_id=released.id)
    kit.clock.advance(H)
    assert kit.lifecycle.expire() == 1
    assert heard == [("gpu-host-1", 2), ("gpu-host-1", 1), ("gpu-host-1", 0)]
    assert [kit.res.db.run(lambda s, i=i: LeaseRepo(s).get(i).status)
            for i in (released.id, expiring.id)] == [S.RELEASED, S.EXPIRED]


def test_a_request_that_held_nothing_frees_no_capacity(kit: Harness) -> None:
    heard: list[str] = []
    kit.gpubot.ender.on_capacity_freed(heard.append)
    pending = kit.claims.claim(user_id="U1", duration=H, gpu_count=2)
    assert pending.status is S.PENDING_APPROVAL
    kit.approvals.deny(lease_id=pending.id or 0, admin_id="UADMIN1", reason="no")
    assert heard == []


def test_a_port_is_held_until_its_container_is_confirmed_gone(kit: Harness) -> None:
    """An expiry whose container stop fails keeps the port: the next claim gets another
    one, and the port comes back once the stop is done."""
    old = kit.claims.start(kit.claims.claim(user_id="U1", duration=H).id or 0)
    kit.runtime.broken.add(old.id)
    kit.clock.advance(H)
    assert kit.lifecycle.expire() == 1
    assert kit.res.db.run(lambda s: LeaseRepo(s).allocation_counts()) == (0, 1)
    new = kit.claims.start(kit.claims.claim(user_id="U2", duration=H).id or 0)
    assert new.port != old.port
    kit.runtime.broken.clear()
    kit.clock.advance(kit.res.config.effect_retry_after)
    assert kit.reconciler.run().effects_resumed == 1  # the owed stop, done now
    assert kit.res.db.run(lambda s: LeaseRepo(s).taken_ports("gpu-host-1")) == {new.port}


def test_an_ended_lease_keeps_no_password_and_says_why(kit: Harness) -> None:
    """The encrypted password is cleared when a lease ends (issue 11.12): nothing can log
    in any more, so nothing is kept that a stolen database would give away."""
    lease = kit.claims.start(kit.claims.claim(user_id="U1", duration=H).id or 0)
    assert kit.res.db.run(lambda s: LeaseRepo(s).get(lease.id or 0).password_token)
    kit.leases.release(user_id="U1", lease_id=lease.id)
    ended = kit.res.db.run(lambda s: LeaseRepo(s).get(lease.id or 0))
    assert ended.password_token is None and ended.end_reason == "released"


def test_an_extend_moves_the_engines_own_time_limit_after_the_commit(kit: Harness) -> None:
    """Slurm kills a job at its time limit: an extend owes the engine the new end."""
    lease = kit.claims.start(kit.claims.claim(user_id="U1", duration=H).id or 0)
    assert kit.runtime.started[-1].time_limit == H  # the job's limit starts as the lease's
    extended = kit.leases.extend(user_id="U1", duration=3 * H)
    assert kit.runtime.ends == {lease.id: extended.expires_at}
    assert extended.expires_at is not None and lease.expires_at is not None
    assert extended.expires_at - lease.expires_at == 3 * H
