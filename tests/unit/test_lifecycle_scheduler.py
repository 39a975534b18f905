"""bot.scheduler: job ids and options, reconcile at start-up, errors swallowed, and the
real lifecycle jobs driven by the real scheduler (lease time comes from FakeClock;
the test waits on events, never sleeps for time to pass)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.db import migrate
from bot.db.engine import Database
from bot.scheduler import JOB_IDS, build_scheduler, guarded
from tests.fakes.services import build_harness

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class Recorder:
    """A lifecycle whose jobs record their calls and can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.ran = {name: threading.Event() for name in JOB_IDS}
        self.fail: set[str] = set()

    def _run(self, name: str) -> int:
        self.calls.append(name)
        self.ran[name].set()
        if name in self.fail:
            raise RuntimeError(f"{name} exploded")
        return 0

    def expire(self) -> int:
        return self._run("expire")

    def remind(self) -> int:
        return self._run("remind")

    def reconcile(self) -> int:
        return self._run("reconcile")

    def jobs(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in JOB_IDS}


@pytest.fixture
def stopped() -> Iterator[list[BackgroundScheduler]]:
    made: list[BackgroundScheduler] = []
    yield made
    for scheduler in made:
        if scheduler.running:
            scheduler.shutdown(wait=True)


def test_jobs_ids_triggers_and_options(stopped: list[BackgroundScheduler]) -> None:
    scheduler = build_scheduler(Recorder().jobs(), 30, reconcile_seconds=120, now=lambda: T0)
    stopped.append(scheduler)
    assert str(scheduler.timezone) == "UTC"
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"expire", "remind", "reconcile"}
    for job_id, seconds in (("expire", 30), ("remind", 30), ("reconcile", 120)):
        job = jobs[job_id]
        assert isinstance(job.trigger, IntervalTrigger)
        assert job.trigger.interval == timedelta(seconds=seconds)
        assert str(job.trigger.timezone) == "UTC"
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, None)
    assert jobs["reconcile"].next_run_time == T0  # once at start-up


def test_reconcile_interval_defaults_to_a_minute_or_the_tick(
        stopped: list[BackgroundScheduler]) -> None:
    for tick, expected in ((5, 60), (300, 300)):
        scheduler = build_scheduler(Recorder().jobs(), tick)
        stopped.append(scheduler)
        assert scheduler.get_job("reconcile").trigger.interval == timedelta(seconds=expected)
    with pytest.raises(ValueError):
        build_scheduler(Recorder().jobs(), 0)


def test_reconcile_runs_at_start_up_and_the_tick_jobs_wait(
        stopped: list[BackgroundScheduler]) -> None:
    lifecycle = Recorder()
    scheduler = build_scheduler(lifecycle.jobs(), 3600)
    stopped.append(scheduler)
    scheduler.start()
    assert lifecycle.ran["reconcile"].wait(10)
    assert lifecycle.calls == ["reconcile"]
    next_expire = scheduler.get_job("expire").next_run_time
    assert next_expire > datetime.now(UTC) + timedelta(minutes=59)


def test_guarded_logs_and_swallows(caplog: pytest.LogCaptureFixture) -> None:
    lifecycle = Recorder()
    lifecycle.fail.add("expire")
    job = guarded("expire", lifecycle.expire)
    with caplog.at_level(logging.ERROR, logger="bot.scheduler"):
        job()
        job()  # and runs again next time
    assert lifecycle.calls == ["expire", "expire"]
    failures = [r for r in caplog.records if "'expire' failed" in r.getMessage()]
    assert len(failures) == 2 and failures[0].exc_info is not None


def test_a_failing_job_does_not_stop_the_scheduler(stopped: list[BackgroundScheduler]) -> None:
    lifecycle = Recorder()
    lifecycle.fail.add("reconcile")
    scheduler = build_scheduler(lifecycle.jobs(), 0.05, reconcile_seconds=3600)
    stopped.append(scheduler)
    scheduler.start()
    assert lifecycle.ran["reconcile"].wait(10)
    lifecycle.ran["expire"].clear()
    assert lifecycle.ran["expire"].wait(10)  # still ticking after the failure
    assert scheduler.running and scheduler.get_job("reconcile") is not None


def test_the_real_service_expires_a_lease_under_the_scheduler(
        sqlite_url: str, stopped: list[BackgroundScheduler]) -> None:
    migrate.upgrade(sqlite_url)
    db = Database(sqlite_url)
    kit = build_harness(db)
    expired = threading.Event()
    real = kit.notifier.expired

    def expired_and_signal(lease: Any, workspace: str) -> None:
        real(lease, workspace)
        expired.set()

    kit.notifier.expired = expired_and_signal  # type: ignore[method-assign]
    lease = kit.claims.start(kit.claims.claim(user_id="U1", duration=timedelta(hours=1)).id or 0)
    kit.clock.advance(timedelta(hours=1))
    scheduler = build_scheduler(kit.gpubot.jobs(), 0.05)
    stopped.append(scheduler)
    scheduler.start()
    try:
        assert expired.wait(10)
    finally:
        scheduler.shutdown(wait=True)
        db.dispose()
    assert [s.lease_id for s in kit.notifier.of("expired")] == [lease.id]
    assert kit.runtime.stopped == [lease.id]
