"""The reconciler never fails a start whose owner is alive (issue 11.8): a start that takes
longer than ready_timeout + starting_grace (a slow image pull) keeps beating, and only a
start that stopped beating is failed."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.domain.lease import LeaseStatus as S
from bot.ports import ContainerHandle, ContainerSpec, ProgressCallback
from tests.fakes.containers import FakeContainerRuntime
from tests.fakes.services import build_harness

H = timedelta(hours=1)


class SlowPull(FakeContainerRuntime):
    """``start`` waits for ``gate``, as a long image pull would."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.entered = threading.Event(), threading.Event()

    def start(self, spec: ContainerSpec, *, on_progress: ProgressCallback | None = None
              ) -> ContainerHandle:
        self.entered.set()
        assert self.gate.wait(20)
        return super().start(spec, on_progress=on_progress)


def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_start_that_beats_is_never_failed_by_the_reconciler(db: Database) -> None:
    runtime = SlowPull()
    kit = build_harness(db, runtime=runtime, start_heartbeat=timedelta(milliseconds=20))
    lease = kit.claims.claim(user_id="U1", duration=H)
    starter = threading.Thread(target=kit.claims.start, args=(lease.id,))
    starter.start()
    assert runtime.entered.wait(10)
    kit.clock.advance(kit.res.config.start_patience + H)  # far past any patience

    def beaten_now() -> bool:
        return db.run(lambda s: LeaseRepo(s).get(lease.id or 0).heartbeat_at) == kit.clock.now()

    wait_for(beaten_now)
    report = kit.reconciler.run()
    assert (report.starts_failed, report.starts_completed) == (0, 0)
    assert db.run(lambda s: LeaseRepo(s).get(lease.id or 0).status) is S.STARTING
    runtime.gate.set()
    starter.join(10)
    assert db.run(lambda s: LeaseRepo(s).get(lease.id or 0).status) is S.ACTIVE
    assert len(kit.notifier.of("access_ready")) == 1 and kit.notifier.of("claim_failed") == []


def test_a_start_that_stopped_beating_is_failed(db: Database) -> None:
    kit = build_harness(db)
    lease = kit.claims.claim(user_id="U1", duration=H)  # granted; then the bot died
    with db.transaction() as session:
        LeaseRepo(session).heartbeat(lease.id or 0, now=kit.clock.now())
    kit.clock.advance(kit.res.config.start_patience)
    assert kit.reconciler.run().starts_failed == 1
    assert db.run(lambda s: LeaseRepo(s).get(lease.id or 0).status) is S.FAILED
