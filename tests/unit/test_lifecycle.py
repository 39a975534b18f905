"""The lifecycle jobs over fakes: expiry, reminders, container deaths, owed effects.

Tests named ``*_on_both`` run on SQLite and PostgreSQL (``db`` fixture); the rest on
SQLite. Time moves only through FakeClock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.db import migrate
from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.domain.lease import Lease, LeaseStatus
from bot.ports import ContainerState, ContainerStatus
from bot.bootstrap import build
from tests.fakes.lifecycle import Env, make_env

S = LeaseStatus
H, M = timedelta(hours=1), timedelta(minutes=1)


class Crash(BaseException):
    """Stands in for SIGKILL: nothing in the services catches it."""


def make(db: Database) -> Env:
    return make_env(db, batch_size=2, workspace_root=Path("/srv/gpubot/ws"))


@pytest.fixture
def env(sqlite_url: str) -> Iterator[Env]:
    migrate.upgrade(sqlite_url)
    database = Database(sqlite_url)
    yield make(database)
    database.dispose()


@pytest.fixture
def env2(db: Database) -> Env:
    """Same, on SQLite and on PostgreSQL."""
    return make(db)


# ------------------------------------------------------------------------ expiry
def test_expire_ends_due_leases_stops_containers_and_keeps_files_on_both(env2: Env) -> None:
    short = [env2.active(f"U{i}", duration=H) for i in range(5)]
    long = env2.active("ULONG", duration=2 * H)
    env2.kit.clock.advance(H)  # exactly at expires_at: due
    assert env2.lc.expire() == 5  # batch_size=2: three batches in one call
    for lease in short:
        ended = env2.lease(lease.id)
        assert ended.status is S.EXPIRED and ended.ended_at == env2.kit.clock.now()
        assert env2.actions(lease.id)[-4:] == ["stop", "expire", "stop.done", "expire.done"]
    assert env2.lease(long.id).status is S.ACTIVE
    assert sorted(env2.kit.runtime.stopped) == sorted(lease.id or 0 for lease in short)
    assert sorted(env2.sent("expired")) == sorted(lease.id or 0 for lease in short)
    assert env2.kit.notifier.of("expired")[0].data["workspace"].startswith("/srv/gpubot/ws/U")
    with env2.kit.res.db.transaction() as session:
        assert LeaseRepo(session).allocation_counts() == (1, 1)
    assert env2.lc.expire() == 0 and len(env2.sent("expired")) == 5  # idempotent
    assert sum(env2.kit.runtime.stop_calls.values()) == 5


def test_a_lease_one_second_before_its_end_is_not_expired(env: Env) -> None:
    lease = env.active("U1", duration=H)
    env.kit.clock.advance(H - timedelta(seconds=1))
    assert env.lc.expire() == 0 and env.lease(lease.id).status is S.ACTIVE
    env.kit.clock.advance(timedelta(seconds=1))
    assert env.lc.expire() == 1


def test_a_stuck_starting_lease_past_its_end_expires_too(env: Env) -> None:
    lease = env.kit.claims.claim(user_id="U1", duration=H)
    with env.kit.res.db.transaction() as session:
        LeaseRepo(session).get(lease.id or 0).expires_at = env.kit.clock.now()
    assert env.lc.expire() == 1 and env.lease(lease.id).status is S.EXPIRED


def test_one_failing_stop_does_not_stop_the_others(env: Env) -> None:
    a, b = env.active("UA", duration=H), env.active("UB", duration=H)
    env.kit.runtime.broken.add(a.id)
    env.kit.clock.advance(H)
    assert env.lc.expire() == 2
    assert sorted(env.sent("expired")) == [a.id, b.id]  # both told, both expired
    assert env.kit.runtime.stopped == [b.id]
    env.kit.runtime.broken.clear()
    assert env.reconcile().orphans_stopped == 1  # the leftover goes next
    assert sorted(env.kit.runtime.stopped) == [a.id, b.id]


def test_a_failed_message_is_retried_once_after_retry_after(env: Env) -> None:
    a, b = env.active("UA", duration=H), env.active("UB", duration=H)
    real = env.kit.notifier.expired
    calls: list[int | None] = []

    def flaky(lease: Lease, workspace: str) -> None:
        calls.append(lease.id)
        if lease.id == a.id and calls.count(a.id) == 1:
            raise RuntimeError("slack 500")
        real(lease, workspace)

    env.kit.notifier.expired = flaky  # type: ignore[method-assign]
    env.kit.clock.advance(H)
    env.lc.expire()
    assert env.sent("expired") == [b.id]
    assert env.reconcile().effects_resumed == 0  # too early: maybe still in progress
    env.kit.clock.advance(env.config.effect_retry_after)
    assert env.reconcile().effects_resumed == 1
    assert sorted(env.sent("expired")) == [a.id, b.id]
    env.kit.clock.advance(env.config.effect_retry_after)
    assert env.reconcile().effects_resumed == 0 and len(env.sent("expired")) == 2


def test_crash_between_commit_and_effects_is_repaired_on_both(env2: Env) -> None:
    """The process dies after the expiry committed, before the container stop and the
    DM. A new process (new service, same database) stops the container at once and
    sends the owed DM once retry_after has passed, exactly once."""
    lease = env2.active("U1", duration=H)

    def die(_lease: Lease, workspace: str) -> None:
        raise Crash()

    env2.kit.runtime.broken.add(lease.id)  # the stop is lost too
    env2.kit.notifier.expired = die  # type: ignore[method-assign, assignment]
    env2.kit.clock.advance(H)
    with pytest.raises(Crash):
        env2.lc.expire()
    assert env2.lease(lease.id).status is S.EXPIRED
    assert [c.lease_id for c in env2.kit.runtime.list_managed()] == [lease.id]

    env2.kit.runtime.broken.clear()
    del env2.kit.notifier.expired  # the restarted process has a working notifier
    kit = env2.kit
    restarted = build(kit.gpubot.settings, notifier=kit.notifier, db=kit.res.db,
                      inventory=kit.inventory, runtime=kit.runtime, clock=kit.clock,
                      vault=kit.res.vault, policy=kit.res.policy).reconciler
    assert restarted.run().orphans_stopped == 1
    assert env2.kit.runtime.list_managed() == [] and env2.sent("expired") == []
    env2.kit.clock.advance(kit.res.config.effect_retry_after)
    restarted.run()
    restarted.run()
    assert env2.sent("expired") == [lease.id]


def test_more_owed_effects_than_a_batch_are_all_redone_in_one_run(env: Env) -> None:
    owed = [env.active(f"U{i}", duration=H) for i in range(5)]  # batch_size=2
    env.kit.notifier.expired = lambda *a, **k: (_ for _ in ()).throw(RuntimeError())  # type: ignore
    env.kit.clock.advance(H)
    assert env.lc.expire() == 5 and env.sent("expired") == []
    del env.kit.notifier.expired
    env.kit.clock.advance(env.config.effect_retry_after)
    assert env.reconcile().effects_resumed == 5
    assert sorted(env.sent("expired")) == sorted(lease.id or 0 for lease in owed)
    assert sum(env.kit.runtime.stop_calls.values()) == 5  # a redo sends, never re-stops


def test_owed_effects_are_dropped_after_the_horizon(env: Env) -> None:
    lease = env.active("U1", duration=H)
    env.kit.notifier.expired = lambda *a, **k: (_ for _ in ()).throw(RuntimeError())  # type: ignore
    env.kit.clock.advance(H)
    env.lc.expire()
    del env.kit.notifier.expired
    env.kit.clock.advance(env.config.effect_horizon + H)
    assert env.reconcile().effects_resumed == 0 and env.sent("expired") == []
    assert env.lease(lease.id).status is S.EXPIRED


# --------------------------------------------------------------------- reminders
def test_each_reminder_offset_exactly_once_on_both(env2: Env) -> None:
    lease = env2.active("U1", duration=3 * H)  # offsets: 1h, 10m
    env2.kit.clock.advance(2 * H - M)
    assert env2.lc.remind() == 0
    env2.kit.clock.advance(M)
    assert env2.lc.remind() == 1 and env2.lc.remind() == 0
    env2.kit.clock.advance(49 * M)
    assert env2.lc.remind() == 0
    env2.kit.clock.advance(M)  # 10 minutes left
    assert env2.lc.remind() == 1 and env2.lc.remind() == 0
    env2.kit.clock.advance(9 * M)
    assert env2.lc.remind() == 0
    got = env2.kit.notifier.of("reminder")
    assert [s.data["remaining"] for s in got] == [H, 10 * M]
    assert env2.lease(lease.id).reminders_sent == "3600,600"
    assert env2.actions(lease.id).count("remind.done") == 2


def test_offsets_due_together_send_one_reminder(env: Env) -> None:
    env.active("U1", duration=30 * M)
    env.kit.clock.advance(25 * M)  # both 1h and 10m are due: only the nearest is sent
    assert env.lc.remind() == 1 and env.lc.remind() == 0
    assert [s.data["remaining"] for s in env.kit.notifier.of("reminder")] == [5 * M]


def test_an_extension_re_arms_the_reminders(env: Env) -> None:
    lease = env.active("U1", duration=2 * H)
    env.kit.clock.advance(H)
    assert env.lc.remind() == 1
    env.kit.leases.extend(user_id="U1", duration=2 * H)
    assert env.lc.remind() == 0
    env.kit.clock.advance(2 * H)
    assert env.lc.remind() == 1
    assert env.sent("reminder") == [lease.id, lease.id]


def test_no_reminder_for_leases_past_their_end_or_not_running(env: Env) -> None:
    env.active("U1", duration=H)
    env.kit.claims.claim(user_id="U2", duration=20 * M)  # starting, never started
    env.kit.claims.claim(user_id="U3", duration=H, gpu_count=2)  # pending approval
    env.kit.clock.advance(H)
    assert env.lc.remind() == 0 and env.sent("reminder") == []


def test_a_lost_reminder_is_resent_only_while_it_still_makes_sense(env: Env) -> None:
    a = env.active("UA", duration=3 * H)
    b = env.active("UB", duration=2 * H + 5 * M)
    env.kit.notifier.reminder = lambda *a, **k: (_ for _ in ()).throw(RuntimeError())  # type: ignore
    env.kit.clock.advance(2 * H)  # a: 1h left; b: 5 min left
    assert env.lc.remind() == 2 and env.sent("reminder") == []
    del env.kit.notifier.reminder
    env.kit.clock.advance(env.config.effect_retry_after)  # b has ended by now
    assert env.reconcile().effects_resumed == 1
    assert env.sent("reminder") == [a.id]
    assert env.kit.notifier.of("reminder")[0].data["remaining"] == 50 * M
    assert env.lease(b.id).reminders_sent == "3600,600"


# ------------------------------------------------------------- container deaths
def test_oom_event_fails_the_lease_and_tells_the_holder_on_both(env2: Env) -> None:
    lease = env2.active("U1")
    env2.kit.runtime.kill(lease.id, exit_code=137, oom_killed=True)
    state = ContainerState(ContainerStatus.EXITED, exit_code=137, oom_killed=True)
    failed = env2.lc.on_container_event(lease.id or 0, state)
    assert failed is not None and failed.status is S.FAILED
    stored = env2.lease(lease.id)
    assert "ran out of memory" in (stored.failure_reason or "")
    assert "137" in (stored.failure_reason or "") and stored.ended_at is not None
    assert env2.sent("container_died") == [lease.id]
    assert env2.kit.notifier.of("container_died")[0].data["state"].oom_killed
    assert env2.kit.runtime.list_managed() == []  # the dead container is removed
    with env2.kit.res.db.transaction() as session:
        assert LeaseRepo(session).allocation_counts() == (0, 0)
    assert env2.lc.on_container_event(lease.id or 0, state) is None  # oom, then die
    assert env2.sent("container_died") == [lease.id]
    assert env2.actions(lease.id)[-4:] == ["stop", "container_died", "stop.done",
                                          "container_died.done"]


def test_exit_code_comes_from_the_engine_when_the_event_lacks_it(env: Env) -> None:
    lease = env.active("U1")
    env.kit.runtime.kill(lease.id, exit_code=1)
    env.lc.on_container_event(lease.id or 0, ContainerState(ContainerStatus.EXITED))
    assert "exit code 1)" in (env.lease(lease.id).failure_reason or "")


def test_events_that_are_not_deaths_change_nothing(env: Env) -> None:
    lease = env.active("U1")
    running = ContainerState(ContainerStatus.RUNNING)
    assert env.lc.on_container_event(lease.id or 0, running) is None
    # a "die" that the engine contradicts (the container runs again)
    assert env.lc.on_container_event(lease.id or 0, ContainerState(ContainerStatus.EXITED,
                                                                   exit_code=0)) is None
    starting = env.kit.claims.claim(user_id="U2", duration=H)  # the start flow owns it
    assert env.lc.on_container_event(starting.id or 0, ContainerState(
        ContainerStatus.GONE)) is None
    env.kit.leases.release(user_id="U1")
    assert env.lc.on_container_event(lease.id or 0, ContainerState(
        ContainerStatus.EXITED, exit_code=143)) is None
    assert env.lease(lease.id).status is S.RELEASED
    assert env.sent("container_died") == []


def test_event_still_fails_the_lease_when_the_engine_cannot_be_polled(env: Env) -> None:
    lease = env.active("U1")

    def down(lease_id: int) -> ContainerState:
        raise ConnectionError("docker.sock")

    env.kit.runtime.poll = down  # type: ignore[method-assign]
    env.lc.on_container_event(lease.id or 0, ContainerState(ContainerStatus.EXITED, 139))
    assert env.lease(lease.id).status is S.FAILED
    assert "exit code 139" in (env.lease(lease.id).failure_reason or "")
