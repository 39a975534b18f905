"""The fair queue over fakes, on SQLite and PostgreSQL (issue 12.1)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.domain.errors import LeaseLimitReached
from bot.domain.lease import Lease
from bot.domain.lease import LeaseStatus as S
from bot.services.effects import register_start
from bot.services.queue import NeverFits
from tests.fakes.gpus import FakeInventory
from tests.fakes.services import Harness, build_harness, make_policy

H, M = timedelta(hours=1), timedelta(minutes=1)


@pytest.fixture
def kit(db: Database) -> Harness:
    return build_harness(db, inventory=FakeInventory(1),
                         policy=make_policy(max_leases_per_user=3))


def active(kit: Harness, user: str, duration: timedelta = H) -> Lease:
    lease = kit.claims.claim(user_id=user, duration=duration)
    return kit.claims.start(lease.id or 0)


def status(kit: Harness, lease: Lease) -> S:
    return kit.res.db.run(lambda s: LeaseRepo(s).get(lease.id or 0).status)


def test_a_full_server_queues_and_the_next_in_line_gets_the_gpu(kit: Harness) -> None:
    a = active(kit, "UA")
    b = kit.claims.claim(user_id="UB", duration=2 * H)
    c = kit.claims.claim(user_id="UC", duration=H)
    assert (b.status, c.status) == (S.QUEUED, S.QUEUED)
    assert [kit.queue.place(x.id) for x in (b, c)] == [1, 2]
    assert kit.res.db.run(lambda s: LeaseRepo(s).allocation_counts()) == (1, 1)  # hold nothing
    kit.clock.advance(10 * M)
    kit.leases.release(user_id="UA", lease_id=a.id)
    granted = kit.res.db.run(lambda s: LeaseRepo(s).get(b.id or 0))
    assert granted.status is S.ACTIVE and granted.gpu_uuids == a.gpu_uuids
    assert granted.expires_at == kit.clock.now() + 2 * H  # its time counts from the grant
    [dm] = kit.notifier.of("access_ready")[1:]
    assert dm.lease_id == b.id
    assert status(kit, c) is S.QUEUED and kit.queue.place(c.id) == 1


def test_someone_holding_no_gpu_goes_ahead(kit: Harness) -> None:
    active(kit, "UA")
    second_of_a = kit.claims.claim(user_id="UA", duration=H)  # A already holds one
    newcomer = kit.claims.claim(user_id="UB", duration=H)
    assert [lease.id for lease in kit.queue.line()] == [newcomer.id, second_of_a.id]
    assert kit.queue.place(newcomer.id) == 1


def test_leave_and_release_withdraw_a_queued_request(kit: Harness) -> None:
    active(kit, "UA")
    b = kit.claims.claim(user_id="UB", duration=H)
    c = kit.claims.claim(user_id="UC", duration=H)
    left = kit.queue.leave(user_id="UB")
    assert left.status is S.RELEASED and left.end_reason == "left_queue"
    assert kit.queue.place(c.id) == 1
    kit.leases.release(user_id="UC", lease_id=c.id)  # release works on a queued request too
    assert kit.queue.line() == [] and status(kit, b) is S.RELEASED
    with pytest.raises(Exception, match="no request in the queue"):
        kit.queue.leave(user_id="UB")


def test_a_request_that_waited_too_long_ends_and_its_holder_is_told(kit: Harness) -> None:
    active(kit, "UA", duration=48 * H)
    b = kit.claims.claim(user_id="UB", duration=H)
    kit.clock.advance(kit.res.config.queue_timeout - M)
    assert kit.reconciler.run().queue_timed_out == 0
    kit.clock.advance(M)
    assert kit.reconciler.run().queue_timed_out == 1
    ended = kit.res.db.run(lambda s: LeaseRepo(s).get(b.id or 0))
    assert ended.status is S.EXPIRED and ended.end_reason == "queue_timeout"
    assert [s.lease_id for s in kit.notifier.of("queue_timed_out")] == [b.id]


def test_a_request_no_server_could_satisfy_is_refused_never_queued(kit: Harness) -> None:
    with pytest.raises(NeverFits, match="most on one server is 1"):
        kit.claims.claim(user_id="UB", duration=H, gpu_count=2)  # before any admin sees it
    assert kit.queue.line() == []


def test_queued_requests_count_against_the_per_user_limit(db: Database) -> None:
    kit = build_harness(db, inventory=FakeInventory(1), policy=make_policy(max_leases_per_user=2))
    active(kit, "UA")
    kit.claims.claim(user_id="UA", duration=H)
    with pytest.raises(LeaseLimitReached):
        kit.claims.claim(user_id="UA", duration=H)


def test_an_approved_request_with_no_gpu_free_joins_the_line(db: Database) -> None:
    kit = build_harness(db, inventory=FakeInventory(2), policy=make_policy(max_leases_per_user=3))
    holder = active(kit, "UA")
    pending = kit.claims.claim(user_id="UB", duration=H, gpu_count=2)
    assert pending.status is S.PENDING_APPROVAL
    approved = kit.approvals.approve(lease_id=pending.id or 0, admin_id="UADMIN1")
    assert approved.status is S.QUEUED and kit.queue.place(approved.id) == 1
    [decision] = kit.notifier.of("approval_decided")
    assert decision.data["approved"] is True
    kit.leases.release(user_id="UA", lease_id=holder.id)
    assert status(kit, approved) is S.ACTIVE


def test_a_large_request_is_not_starved_by_small_ones(db: Database) -> None:
    """Two GPUs, a 2-GPU request waiting behind a stream of 1-GPU requests: once it has
    waited GPUBOT_QUEUE_RESERVE_AFTER, freed GPUs are kept for it."""
    kit = build_harness(db, inventory=FakeInventory(2), queue_reserve_after=30 * M)
    first, second = active(kit, "U1"), active(kit, "U2")
    big = kit.claims.claim(user_id="UBIG", duration=H, gpu_count=2)  # an admin approves it
    big = kit.approvals.approve(lease_id=big.id or 0, admin_id="UADMIN1")
    small = kit.claims.claim(user_id="USMALL", duration=H)
    assert big.status is S.QUEUED and small.status is S.QUEUED
    kit.leases.release(user_id="U1", lease_id=first.id)  # before the bound: backfill
    assert status(kit, small) is S.ACTIVE and status(kit, big) is S.QUEUED
    later = kit.claims.claim(user_id="ULATE", duration=H)
    kit.clock.advance(30 * M)
    kit.leases.release(user_id="U2", lease_id=second.id)  # past the bound: kept for big
    assert status(kit, later) is S.QUEUED and status(kit, big) is S.QUEUED
    kit.leases.release(user_id="USMALL", lease_id=small.id)
    assert status(kit, big) is S.ACTIVE and status(kit, later) is S.QUEUED


def test_a_pass_lost_in_a_crash_is_run_by_the_reconciler(kit: Harness) -> None:
    a = active(kit, "UA")
    b = kit.claims.claim(user_id="UB", duration=H)
    kit.gpubot.ender._listeners.clear()  # the capacity-freed signal dies with the process
    kit.leases.release(user_id="UA", lease_id=a.id)
    assert status(kit, b) is S.QUEUED
    assert kit.reconciler.run().queue_granted == 1
    assert status(kit, b) is S.ACTIVE
    assert [s.lease_id for s in kit.notifier.of("access_ready")] == [a.id, b.id]


def test_a_grant_whose_start_was_lost_is_started_by_the_outbox(kit: Harness) -> None:
    """kill -9 between one lease ending and the next lease's start: the restarted
    process starts it, once."""
    a = active(kit, "UA")
    b = kit.claims.claim(user_id="UB", duration=H)

    class Killed(BaseException):
        """Stands in for SIGKILL: nothing in the services catches it."""

    def die(_lease_id: int) -> None:
        raise Killed()

    register_start(kit.gpubot.outbox, die)
    with pytest.raises(Killed):
        kit.leases.release(user_id="UA", lease_id=a.id)
    assert status(kit, b) is S.STARTING  # granted; its container never started
    register_start(kit.gpubot.outbox, kit.claims.start)  # the restarted process
    kit.reconciler.run()
    assert status(kit, b) is S.STARTING, "not before the retry delay"
    kit.clock.advance(kit.res.config.effect_retry_after)
    kit.reconciler.run()
    kit.reconciler.run()
    assert status(kit, b) is S.ACTIVE and len(kit.runtime.started) == 2
    assert [s.lease_id for s in kit.notifier.of("access_ready")] == [a.id, b.id]


@pytest.mark.postgres
def test_two_processes_never_grant_one_place_twice(pg_url: str) -> None:
    from bot.db import migrate

    migrate.upgrade(pg_url)
    dbs = [Database(pg_url), Database(pg_url)]
    try:
        first = build_harness(dbs[0], inventory=FakeInventory(1))
        second = build_harness(dbs[1], inventory=FakeInventory(1), runtime=first.runtime,
                               clock=first.clock)
        holder = active(first, "UA")
        waiting = first.claims.claim(user_id="UB", duration=H)
        first.gpubot.ender._listeners.clear()
        first.leases.release(user_id="UA", lease_id=holder.id)
        barrier = threading.Barrier(2)
        granted: list[list[Lease]] = []

        def grant(kit: Harness) -> None:
            barrier.wait()
            granted.append(kit.queue.grant_waiting())

        threads = [threading.Thread(target=grant, args=(k,)) for k in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert sorted(len(g) for g in granted) == [0, 1]
        assert status(first, waiting) is S.ACTIVE and len(first.runtime.started) == 2
    finally:
        for db in dbs:
            db.dispose()


def test_the_queue_view_adds_starts_waiting_in_the_engines_own_queue(kit: Harness) -> None:
    """A granted lease whose job the engine holds pending (Slurm) is listed with the
    engine's place, reason and expected start; an engine that cannot answer lists none."""
    from datetime import UTC, datetime

    from bot.domain.containers import EngineWait
    from bot.ports import ContainerSpec
    from handlers.contention_blocks import queue_message

    runtime = kit.runtime
    lease = kit.claims.claim(user_id="U1", duration=H)  # granted, starting
    runtime.start(ContainerSpec(lease_id=lease.id or 0, user_id="U1", gpu_uuids=(),
                                port=lease.port or 0, password_hash="argon2:x"))
    soon = datetime(2026, 12, 1, 14, 5, tzinfo=UTC)
    runtime.queue[lease.id or 0] = EngineWait("Resources", place=2, of=3, expected_start=soon)
    assert [(w.id, wait) for w, wait in kit.queue.engine_line()] == \
        [(lease.id, runtime.queue[lease.id or 0])]
    _, blocks = queue_message([], kit.clock.now(), kit.queue.engine_line())
    shown = str(blocks)
    assert "Nobody is waiting for a GPU." in shown
    assert f"<@U1> lease {lease.id}: #2 of 3 in the cluster's queue (Resources), expected " \
           f"to start <!date^{int(soon.timestamp())}^" in shown

    def broken() -> dict:
        raise ConnectionError("slurmrestd is down")
    runtime.waiting = broken
    assert kit.queue.engine_line() == []


def test_a_pass_with_nobody_waiting_reads_no_inventory(kit: Harness) -> None:
    """On Slurm a listing is a REST call over every job: a reconcile tick with an empty
    queue must not pay for it."""
    reads: list[int] = []
    listing = kit.inventory.list_gpus
    kit.inventory.list_gpus = lambda: reads.append(1) or listing()  # type: ignore[method-assign]
    assert kit.queue.grant_waiting() == []
    assert reads == []
