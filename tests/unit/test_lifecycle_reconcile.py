"""The reconciler over fakes: orphans, dead containers, stuck starts,
approval timeouts, allocation repair. ``*_on_both`` run on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import insert, update

from bot.db import migrate
from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.db.tables import gpu_allocations, leases
from bot.domain.lease import Lease, LeaseStatus
from bot.ports import ContainerSpec
from tests.fakes.lifecycle import Env, make_env

S = LeaseStatus
H, M = timedelta(hours=1), timedelta(minutes=1)


class Killed(BaseException):
    """Stands in for SIGKILL: nothing in the services catches it."""


def make(db: Database) -> Env:
    return make_env(db, starting_grace=5 * M)


@pytest.fixture
def env(sqlite_url: str) -> Iterator[Env]:
    migrate.upgrade(sqlite_url)
    database = Database(sqlite_url)
    yield make(database)
    database.dispose()


@pytest.fixture
def env2(db: Database) -> Env:
    return make(db)


# --------------------------------------------------------------------- containers
def test_orphans_are_removed_and_live_containers_kept_on_both(env2: Env) -> None:
    keep = env2.active("UKEEP")
    gone = env2.active("UGONE")
    with env2.kit.res.db.transaction() as session:  # ended, but its stop was lost
        lease = LeaseRepo(session).get(gone.id or 0)
        lease.transition(S.RELEASED, at=env2.kit.clock.now())
        LeaseRepo(session).free_gpus([gone.id or 0])
    env2.kit.runtime.start(ContainerSpec(lease_id=999, user_id="USTRAY", gpu_uuids=(),
                                         port=9999, password_hash="argon2:x"))
    report = env2.reconcile()
    assert report.orphans_stopped == 2 and report.failed_steps == []
    assert [c.lease_id for c in env2.kit.runtime.list_managed()] == [keep.id]
    assert env2.lease(keep.id).status is S.ACTIVE
    assert env2.reconcile().orphans_stopped == 0


@pytest.mark.parametrize(("how", "words"), [
    ("kill", "stopped unexpectedly (exit code 1)"),
    ("oom", "ran out of memory and was killed (exit code 137)"),
    ("vanish", "removed outside gpubot"),
])
def test_an_active_lease_whose_container_died_is_failed(env: Env, how: str, words: str) -> None:
    lease, other = env.active("U1"), env.active("U2")
    if how == "vanish":
        env.kit.runtime.vanish(lease.id)
    else:
        env.kit.runtime.kill(lease.id, exit_code=137 if how == "oom" else 1,
                             oom_killed=how == "oom")
    assert env.reconcile().died == 1
    failed = env.lease(lease.id)
    assert failed.status is S.FAILED and words in (failed.failure_reason or "")
    assert "files are kept" in (failed.failure_reason or "")
    assert env.sent("container_died") == [lease.id]
    assert env.lease(other.id).status is S.ACTIVE and env.allocations() == (1, 1)
    assert [c.lease_id for c in env.kit.runtime.list_managed()] == [other.id]
    assert env.reconcile().died == 0 and env.sent("container_died") == [lease.id]


def test_dead_container_failure_on_both(env2: Env) -> None:
    lease = env2.active("U1")
    env2.kit.runtime.kill(lease.id, exit_code=139)
    assert env2.reconcile().died == 1
    assert env2.lease(lease.id).status is S.FAILED and env2.allocations() == (0, 0)
    assert env2.sent("container_died") == [lease.id]


def test_an_engine_that_cannot_list_fails_nothing(env: Env) -> None:
    lease = env.active("U1")
    env.kit.claims.claim(user_id="U2", duration=H, gpu_count=2)  # pending approval
    env.kit.runtime.listing_fails = True
    env.kit.clock.advance(env.kit.res.config.approval_timeout)
    report = env.reconcile()
    assert report.failed_steps == ["list_managed"] and report.died == 0
    assert env.lease(lease.id).status is S.ACTIVE
    assert report.approvals_timed_out == 1  # the other steps still ran


def test_a_lease_missing_from_the_listing_is_polled_before_it_fails(env: Env) -> None:
    lease = env.active("U1")
    env.kit.runtime.list_managed = list  # type: ignore[method-assign]  # listed too early
    assert env.reconcile().died == 0 and env.lease(lease.id).status is S.ACTIVE


def test_leases_on_another_host_are_not_judged_by_this_engine(env: Env) -> None:
    lease = env.active("U1")
    with env.kit.res.db.transaction() as session:
        session.execute(update(leases).where(leases.c.id == lease.id).values(host="gpu-host-2"))
    env.kit.runtime.vanish(lease.id)
    assert env.reconcile().died == 0 and env.lease(lease.id).status is S.ACTIVE


# -------------------------------------------------------------------- stuck starts
def test_stuck_start_without_container_waits_then_fails_on_both(env2: Env) -> None:
    lease = env2.kit.claims.claim(user_id="U1", duration=H)  # granted; bot died here
    patience = env2.kit.res.config.ready_timeout + env2.config.starting_grace
    env2.kit.clock.advance(patience - timedelta(seconds=1))
    assert env2.reconcile().starts_failed == 0
    assert env2.lease(lease.id).status is S.STARTING
    env2.kit.clock.advance(timedelta(seconds=1))
    assert env2.reconcile().starts_failed == 1
    failed = env2.lease(lease.id)
    assert failed.status is S.FAILED and "did not come up in time" in (failed.failure_reason or "")
    assert env2.sent("claim_failed") == [lease.id] and env2.allocations() == (0, 0)


def test_stuck_start_with_a_running_container_is_completed_on_both(env2: Env) -> None:
    lease = env2.kit.claims.claim(user_id="U1", duration=H)
    env2.start_container_only(lease)
    env2.kit.clock.advance(env2.kit.res.config.ready_timeout + env2.config.starting_grace)
    assert env2.reconcile().starts_completed == 1
    done = env2.lease(lease.id)
    assert done.status is S.ACTIVE and done.expires_at == env2.kit.clock.now() + H
    assert env2.sent("access_ready") == [lease.id]
    assert env2.kit.notifier.of("access_ready")[0].data["password"]
    assert len(env2.kit.runtime.started) == 1  # the running container was reused


@pytest.mark.parametrize(("vanish", "words"), [
    (False, "stopped unexpectedly (exit code 2) while it was starting"),
    (True, "was removed outside gpubot while it was starting"),
])
def test_a_starting_lease_whose_container_died_fails_at_once(env: Env, vanish: bool,
                                                             words: str) -> None:
    lease = env.kit.claims.claim(user_id="U1", duration=H)
    env.start_container_only(lease)
    with env.kit.res.db.transaction() as session:  # the start recorded its container
        LeaseRepo(session).get(lease.id or 0).container_id = "fake1"
    if vanish:
        env.kit.runtime.vanish(lease.id)
    else:
        env.kit.runtime.kill(lease.id, exit_code=2)
    assert env.reconcile().starts_failed == 1  # no waiting for the patience window
    assert words in (env.lease(lease.id).failure_reason or "")
    assert env.sent("claim_failed") == [lease.id]
    assert env.kit.runtime.list_managed() == [] and env.allocations() == (0, 0)


def test_a_start_recorded_after_the_listing_is_not_taken_for_dead(env: Env,
                                                                   monkeypatch) -> None:
    """The listing came first; the start created and recorded its container before the
    leases were read. Polled again, the container is running: the start goes on."""
    lease = env.kit.claims.claim(user_id="U1", duration=H)
    env.start_container_only(lease)
    with env.kit.res.db.transaction() as session:
        LeaseRepo(session).get(lease.id or 0).container_id = "fake1"
    monkeypatch.setattr(env.kit.runtime, "list_managed", lambda: [])  # an older listing
    report = env.reconcile()
    assert report.starts_failed == 0 and env.lease(lease.id).status is S.STARTING
    assert env.sent("claim_failed") == [] and lease.id not in env.kit.runtime.stopped


def test_a_recovery_is_taken_once_per_patience_window(env: Env) -> None:
    lease = env.kit.claims.claim(user_id="U1", duration=H)
    env.start_container_only(lease)
    patience = env.kit.res.config.ready_timeout + env.config.starting_grace
    env.kit.clock.advance(patience)
    calls: list[int] = []

    def hangs_then_dies(lease_id: int) -> Lease:
        calls.append(lease_id)
        raise RuntimeError("bot died inside start")

    env.kit.claims.start = hangs_then_dies  # type: ignore[method-assign]
    env.reconcile()
    env.reconcile()  # another process, or the next run: must not start it again
    assert calls == [lease.id]
    env.kit.clock.advance(patience)
    env.reconcile()
    assert calls == [lease.id, lease.id]


# ---------------------------------------------------------------------- approvals
def test_approval_times_out_once_on_both(env2: Env) -> None:
    old = env2.kit.claims.claim(user_id="U1", duration=H, gpu_count=2)
    env2.kit.clock.advance(H)
    young = env2.kit.claims.claim(user_id="U2", duration=H, gpu_count=2)
    env2.kit.clock.advance(env2.kit.res.config.approval_timeout - H)
    assert env2.reconcile().approvals_timed_out == 1
    denied = env2.lease(old.id)
    assert denied.status is S.DENIED and denied.decision_by == "gpubot"
    assert denied.decision_reason == "approval timed out"
    assert env2.lease(young.id).status is S.PENDING_APPROVAL
    decided = env2.kit.notifier.of("approval_decided")
    assert [(d.lease_id, d.data) for d in decided] == [
        (old.id, {"approved": False, "by": "gpubot", "reason": "approval timed out"})]
    assert env2.reconcile().approvals_timed_out == 0
    assert len(env2.kit.notifier.of("approval_decided")) == 1


# -------------------------------------------------------------------- allocations
def test_allocations_of_ended_leases_are_deleted_on_both(env2: Env) -> None:
    live, ended = env2.active("U1"), env2.active("U2")
    with env2.kit.res.db.transaction() as session:  # a bug ended it without freeing
        session.execute(update(leases).where(leases.c.id == ended.id).values(status=S.RELEASED))
        session.execute(insert(gpu_allocations).values(
            gpu_uuid="GPU-stray", host="gpu-host-1", lease_id=ended.id,
            allocated_at=env2.kit.clock.now()))
    assert env2.allocations() == (3, 2)
    assert env2.reconcile().allocations_repaired == 3
    assert env2.allocations() == (1, 1)
    assert env2.lease(live.id).status is S.ACTIVE
    assert env2.reconcile().allocations_repaired == 0


def test_one_failing_step_does_not_stop_the_others(env: Env, monkeypatch: pytest.MonkeyPatch
                                                   ) -> None:
    from bot.services import reconcile as module

    def broken(self: object, report: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(module.Reconciler, "approvals", broken)
    lease = env.active("U1")
    env.kit.runtime.kill(lease.id)
    report = env.reconcile()
    assert report.failed_steps == ["approvals"] and report.died == 1
    assert env.kit.runtime.stop_calls[lease.id] == 1
    assert env.lease(lease.id).status is S.FAILED and env.kit.runtime.list_managed() == []


def test_an_idle_report_is_falsy_so_the_scheduler_logs_it_quietly(env: Env) -> None:
    env.active("U1")
    assert not env.reconcile()
    env.kit.runtime.listing_fails = True
    assert env.reconcile()


def no_failure(env: Env) -> None:
    pass


def a_failed_start(env: Env) -> None:
    env.kit.runtime.fail_next_start("no space left on device")


@pytest.mark.parametrize(("message", "arrange", "status", "check"), [
    ("access_ready", no_failure, S.ACTIVE, lambda data: len(data["password"]) >= 16),
    ("claim_failed", a_failed_start, S.FAILED, lambda data: "could not start" in data["reason"]),
], ids=["access", "claim_failed"])
def test_an_unconfirmed_dm_is_sent_again_once(env2: Env, monkeypatch, message, arrange, status,
                                              check) -> None:
    """The bot died between ending a start (active, or failed) and the DM that says so,
    or the DM failed: the reconciler sends it once the retry delay has passed, only once."""
    notifier = env2.kit.notifier

    def claim_and_start(user: str) -> Lease:
        arrange(env2)
        lease = env2.kit.claims.claim(user_id=user, duration=3 * H)
        env2.kit.claims.start(lease.id or 0)
        return lease

    def lost(*args):  # the DM never leaves: a crash at this line
        raise Killed()

    monkeypatch.setattr(notifier, message, lost)
    with pytest.raises(Killed):
        claim_and_start("U1")
    monkeypatch.undo()
    [lease] = env2.kit.res.db.run(lambda session: LeaseRepo(session).recent(limit=1))
    assert lease.status is status and notifier.of(message) == []
    env2.reconcile()
    assert notifier.of(message) == [], "not before the retry delay"
    env2.kit.clock.advance(env2.config.effect_retry_after + M)
    env2.reconcile()
    env2.reconcile()
    [sent] = notifier.of(message)
    assert sent.lease_id == lease.id and check(sent.data)
    other = claim_and_start("U2")  # a DM that reached the user is never repeated
    env2.kit.clock.advance(env2.config.effect_retry_after + M)
    env2.reconcile()
    assert [s.lease_id for s in notifier.of(message)] == [lease.id, other.id]
