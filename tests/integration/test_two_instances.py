"""Two bot processes on one database never do a lifecycle effect twice.

Two bot instances, each with its own Database engine (its own
connections) and its own notifier, share the container engine and the clock and run
their jobs at the same moment from two threads, several rounds each, over many due
leases, with small batches so their claims interleave. On SQLite and PostgreSQL: each
reminder, death notice, expiry notice and approval time-out reaches its user exactly
once, and each container is stopped exactly once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from bot.db import migrate
from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.domain.lease import Lease, LeaseStatus
from bot.ports import ContainerState, ContainerStatus, ManagedContainer
from tests.fakes.clock import FakeClock
from tests.fakes.containers import FakeContainerRuntime
from tests.fakes.gpus import FakeInventory
from tests.fakes.services import Harness, build_harness

S = LeaseStatus
H = timedelta(hours=1)
LEASES, DYING, FLAKY, PENDING, ROUNDS = 120, 20, 15, 30, 3


class SharedRuntime(FakeContainerRuntime):
    """The fake engine, made safe for two threads, counting every stop call."""

    def __init__(self) -> None:
        super().__init__()
        self.stop_calls: Counter[int] = Counter()
        self._lock = threading.RLock()

    def stop(self, lease_id: int) -> None:
        with self._lock:
            self.stop_calls[lease_id] += 1
            super().stop(lease_id)

    def poll(self, lease_id: int) -> ContainerState:
        with self._lock:
            return super().poll(lease_id)

    def list_managed(self) -> list[ManagedContainer]:
        with self._lock:
            return super().list_managed()


class Instance:
    def __init__(self, url: str, runtime: SharedRuntime, clock: FakeClock) -> None:
        self.db = Database(url)
        self.kit: Harness = build_harness(self.db, runtime=runtime, clock=clock,
                                          inventory=FakeInventory(LEASES + 10),
                                          port_range=(20000, 20999), batch_size=10)
        self.lc = self.kit.lifecycle
        self.config = self.kit.res.config
        self.refuse_expired: set[int] = set()
        real = self.kit.notifier.expired

        def expired(lease: Lease, workspace: str) -> None:
            if lease.id in self.refuse_expired:
                raise RuntimeError("slack is down for this one")
            real(lease, workspace)

        self.kit.notifier.expired = expired  # type: ignore[method-assign]

    def sent(self, kind: str) -> Counter[int | None]:
        return Counter(s.lease_id for s in self.kit.notifier.of(kind))


@pytest.fixture
def pair(db_url: str) -> Iterator[tuple[Instance, Instance]]:
    migrate.upgrade(db_url)
    runtime, clock = SharedRuntime(), FakeClock()
    a, b = Instance(db_url, runtime, clock), Instance(db_url, runtime, clock)
    yield a, b
    a.db.dispose()
    b.db.dispose()


def together(job_a: Callable[[], Any], job_b: Callable[[], Any]) -> None:
    """Both jobs from two threads released at once, ROUNDS times each; re-raise."""
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def loop(job: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            for _ in range(ROUNDS):
                job()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(j,)) for j in (job_a, job_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a lifecycle job hung"
    if errors:
        raise errors[0]


def exactly_once(a: Instance, b: Instance, kind: str, expected: set[int | None]) -> str:
    got = a.sent(kind) + b.sent(kind)
    assert set(got) == expected and set(got.values()) == {1}, (kind, got)
    return f"{kind}: A={sum(a.sent(kind).values())} B={sum(b.sent(kind).values())}"


def test_two_processes_never_double_an_effect(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    runtime = a.kit.runtime
    leases = [a.kit.claims.start(a.kit.claims.claim(user_id=f"U{i:04d}", duration=2 * H).id or 0)
              for i in range(LEASES)]
    ids = [lease.id for lease in leases]
    assert {lease.status for lease in leases} == {S.ACTIVE}
    split: list[str] = []

    # 1. one hour left: every lease is due its 1h reminder
    a.kit.clock.advance(H)
    together(a.lc.remind, b.lc.remind)
    split.append(exactly_once(a, b, "reminder", set(ids)))

    # 2. containers die; both processes get the Docker event for each
    dying = ids[:DYING]
    for lease_id in dying:
        runtime.kill(lease_id, exit_code=137, oom_killed=True)
    state = ContainerState(ContainerStatus.EXITED, exit_code=137, oom_killed=True)
    together(lambda: [a.lc.on_container_event(i or 0, state) for i in dying],
             lambda: [b.lc.on_container_event(i or 0, state) for i in reversed(dying)])
    split.append(exactly_once(a, b, "container_died", set(dying)))

    # 3. the rest expire; Slack refuses some expiry DMs (they stay owed)
    alive = ids[DYING:]
    flaky = set(alive[:FLAKY])
    a.refuse_expired = b.refuse_expired = flaky  # type: ignore[assignment]
    a.kit.clock.advance(H)
    together(a.lc.expire, b.lc.expire)
    split.append(exactly_once(a, b, "expired", set(alive) - flaky))

    # 4. pending approvals time out and the owed DMs are redone, both processes at once
    pending = [a.kit.claims.claim(user_id=f"UP{i:04d}", duration=H, gpu_count=2).id
               for i in range(PENDING)]
    a.refuse_expired = b.refuse_expired = set()
    a.kit.clock.advance(a.kit.res.config.approval_timeout)
    together(a.kit.reconciler.run, b.kit.reconciler.run)
    split.append(exactly_once(a, b, "approval_decided", set(pending)))
    split.append(exactly_once(a, b, "expired", set(alive)))

    assert runtime.stop_calls == Counter({i: 1 for i in ids}), "a container stopped twice"
    assert runtime.list_managed() == []
    with a.db.transaction() as session:
        repo = LeaseRepo(session)
        assert repo.allocation_counts() == (0, 0)
        assert {repo.get(i or 0).status for i in dying} == {S.FAILED}
        assert {repo.get(i or 0).status for i in alive} == {S.EXPIRED}
        assert {repo.get(i or 0).status for i in pending} == {S.DENIED}
    backend = a.db.engine.dialect.name
    print(f"\n[two instances] {backend}: " + "; ".join(split))


@pytest.mark.postgres
def test_a_redo_taken_by_the_other_process_meanwhile_is_not_redone(pg_url: str) -> None:
    """PostgreSQL, forced interleaving: process B has read the owed effects but not yet
    locked their leases when process A redoes them all and commits. B's locks then
    succeed (A is done); only the re-read after the lock shows B that nothing is owed.
    (SQLite needs no such test: BEGIN IMMEDIATE lets no one in between.)"""
    from sqlalchemy import event

    from bot.services.reconcile import ReconcileReport

    migrate.upgrade(pg_url)
    runtime, clock = SharedRuntime(), FakeClock()
    a, b = Instance(pg_url, runtime, clock), Instance(pg_url, runtime, clock)
    try:
        ids = [a.kit.claims.start(a.kit.claims.claim(user_id=f"U{i}", duration=H).id or 0).id
               for i in range(3)]
        a.refuse_expired = set(ids)  # type: ignore[arg-type]
        clock.advance(H)
        assert a.lc.expire() == 3 and not a.sent("expired")
        a.refuse_expired = set()
        clock.advance(a.config.effect_retry_after)
        interleaved: list[bool] = []

        def meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "FOR UPDATE SKIP LOCKED" in statement and not interleaved:
                interleaved.append(True)  # B read what is owed; A redoes it all now
                a.kit.reconciler.resume(ReconcileReport())

        event.listen(b.db.engine, "before_cursor_execute", meanwhile)
        b.kit.reconciler.resume(ReconcileReport())
        assert interleaved, "the interleaving hook never ran"
        exactly_once(a, b, "expired", set(ids))
        assert not b.sent("expired")
    finally:
        a.db.dispose()
        b.db.dispose()
