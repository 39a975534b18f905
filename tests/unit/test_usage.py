"""UsageService over fakes (issue 12.3, 12.4): figures from what the idle sampler wrote,
on SQLite and PostgreSQL. Samples come from ``kit.idle.sample()`` with the fake GPUs'
utilization set; time moves with the FakeClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.db.engine import Database
from bot.domain.errors import NotAllowed
from bot.domain.lease import Lease
from bot.settings import Settings
from tests.fakes.gpus import FakeInventory
from tests.fakes.services import Harness, build_harness, make_policy

H, DAY = timedelta(hours=1), timedelta(days=1)
ADMIN, ANN, BEN = "UADMIN1", "UANN", "UBEN"


@pytest.fixture
def kit(db: Database) -> Harness:
    return build_harness(db, inventory=FakeInventory(4),
                         policy=make_policy(max_leases_per_user=3))


def lease(kit: Harness, user: str, *, gpus: int = 1, hours: int = 8) -> Lease:
    granted = kit.claims.claim(user_id=user, duration=timedelta(hours=hours), gpu_count=gpus)
    if gpus > 1:  # more than one GPU: an admin approves
        granted = kit.approvals.approve(lease_id=granted.id or 0, admin_id=ADMIN)
    return kit.claims.start(granted.id or 0)


def busy(kit: Harness, held: Lease, util: int) -> None:
    for gpu in kit.inventory.gpus:
        if gpu.uuid in held.gpu_uuids:
            kit.inventory.set(gpu.index, utilization_percent=util)


def run(kit: Harness, hours: int) -> None:
    """An hour at a time, one sample each."""
    for _ in range(hours):
        kit.clock.advance(H)
        kit.idle.sample()


def test_yours_over_7_and_30_days_and_nobody_elses(kit: Harness) -> None:
    old = lease(kit, ANN)
    busy(kit, old, 20)
    run(kit, 4)  # 4 GPU-hours at 20 %, then released: 10 days before the figures
    kit.leases.release(user_id=ANN, lease_id=old.id)
    busy(kit, old, 0)
    kit.clock.advance(10 * DAY)
    new = lease(kit, ANN, gpus=2)
    busy(kit, new, 80)
    run(kit, 3)  # 6 GPU-hours at 80 %
    other = lease(kit, BEN)
    busy(kit, other, 50)
    run(kit, 1)  # one more hour for ANN's two GPUs, and BEN's first

    week, month = kit.gpubot.use_cases.usage.usage(user_id=ANN)
    assert (week.days, month.days) == (7, 30)
    assert week.lab is None and month.lab is None  # not an admin: only hers
    assert (week.mine.user_id, week.mine.leases) == (ANN, 1)
    assert week.mine.gpu_hours == pytest.approx(8.0)  # 2 GPUs x 4 hours
    assert week.mine.mean_util == pytest.approx(80)
    assert (month.mine.leases, month.mine.gpu_hours) == (2, pytest.approx(12.0))
    assert month.mine.mean_util == pytest.approx((4 * 20 + 4 * 80) / 8)  # per sample


def test_an_admin_sees_the_lab_by_user_most_first(kit: Harness) -> None:
    a, b = lease(kit, ANN, gpus=2), lease(kit, BEN)
    busy(kit, a, 90)
    busy(kit, b, 10)
    run(kit, 5)

    week, _ = kit.gpubot.use_cases.usage.usage(user_id=ADMIN)
    assert week.mine.leases == 0 and week.mine.gpu_hours == 0 and week.mine.mean_util is None
    assert week.lab is not None
    assert [(x.user_id, round(x.gpu_hours, 3), x.mean_util) for x in week.lab] == [
        (ANN, 10.0, 90), (BEN, 5.0, 10)]
    everyone = kit.gpubot.use_cases.usage.by_user(since=7 * DAY)
    assert [x.user_id for x in everyone] == [ANN, BEN]


def test_the_report_has_each_gpu_per_day_and_hours_per_user(kit: Harness) -> None:
    a = lease(kit, ANN)
    busy(kit, a, 60)
    run(kit, 2)
    kit.clock.advance(DAY)  # next day: every GPU idle once
    busy(kit, a, 0)
    kit.idle.sample()

    report = kit.gpubot.use_cases.usage.report()
    assert report.until == kit.clock.now()
    assert len(report.days) == 7 and report.days[-1] == kit.clock.now().date()
    assert report.gpus == ["GPU 0", "GPU 1", "GPU 2", "GPU 3"]  # from the live listing
    held = next(g.index for g in kit.inventory.gpus if g.uuid in a.gpu_uuids)
    first, second = report.days[-2], report.days[-1]
    assert report.util(f"GPU {held}", first) == pytest.approx(60)
    assert report.util(f"GPU {held}", second) == 0
    assert report.util(f"GPU {(held + 1) % 4}", first) == 0
    assert report.util("GPU 0", report.days[0]) is None  # before the first sample
    assert [(x.user_id, x.leases) for x in report.users] == [(ANN, 1)]
    assert report.lab.gpu_hours == pytest.approx(26.0)  # 2 h + a day, still active


def test_posting_the_report_is_for_admins_and_sends_a_png(kit: Harness) -> None:
    a = lease(kit, ANN)
    busy(kit, a, 70)
    run(kit, 3)
    usage = kit.gpubot.use_cases.usage
    with pytest.raises(NotAllowed):
        usage.post_report(by=ANN)
    assert kit.notifier.of("usage_report") == []

    report = usage.post_report(by=ADMIN)
    [sent] = kit.notifier.of("usage_report")
    assert sent.data["report"] == report
    assert sent.data["png"].startswith(b"\x89PNG\r\n\x1a\n")


def test_old_gpu_days_are_pruned_by_the_prune_job(db: Database) -> None:
    kit = build_harness(db, inventory=FakeInventory(2),
                        settings=Settings(GPUBOT_USAGE_RETENTION="40d"))
    kit.idle.sample()
    first_day = kit.clock.now().date()
    kit.clock.advance(20 * DAY)
    kit.idle.sample()
    assert kit.gpubot.prune() == 0  # 20 days old: kept

    kit.clock.advance(21 * DAY)
    kit.idle.sample()
    assert kit.gpubot.prune() == 2  # 41 days old: both GPUs' rows of that day
    report = kit.gpubot.use_cases.usage

    def days() -> set:
        from bot.db.usage import UsageRepo

        return {row[2] for row in db.run(lambda s: UsageRepo(s).gpu_days(first_day))}

    assert first_day not in days() and len(days()) == 2
    assert report.prune(older_than=timedelta(days=40)) == 0  # idempotent


def test_the_report_runs_on_its_schedule_in_utc(db: Database) -> None:
    kit = build_harness(db)  # GPUBOT_REPORT_SCHEDULE's default: mon 09:00
    trigger = kit.gpubot.scheduler().get_job("report").trigger
    sunday = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, sunday) == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert kit.gpubot.jobs()["report"]() == "sent"  # what the scheduler calls
    assert len(kit.notifier.of("usage_report")) == 1

    twice = build_harness(db, settings=Settings(GPUBOT_REPORT_SCHEDULE="tue,fri 18:30"))
    trigger = twice.gpubot.scheduler().get_job("report").trigger
    assert trigger.get_next_fire_time(None, sunday) == datetime(2026, 11, 24, 18, 30, tzinfo=UTC)
    off = build_harness(db, settings=Settings(GPUBOT_REPORT_SCHEDULE="off"))
    assert off.gpubot.scheduler().get_job("report") is None
