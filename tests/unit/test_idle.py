"""Idle reclaim and usage sampling over fakes (issue 12.2, 12.3): the GPUs' utilization
comes from FakeInventory, Jupyter's activity from FakeJupyterProbe (the real probe is
tested against a real Jupyter in tests/integration/test_jupyter_probe.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.domain.idle import IdleRules
from bot.domain.lease import Lease
from bot.domain.lease import LeaseStatus as S
from tests.fakes.gpus import FakeInventory
from tests.fakes.services import Harness, build_harness, make_policy

M = timedelta(minutes=1)
RULES = IdleRules(util_percent=5, warn_after=10 * M, reclaim_after=20 * M, snooze=30 * M)


@pytest.fixture
def kit(db: Database) -> Harness:
    return build_harness(db, inventory=FakeInventory(1), idle=RULES,
                         policy=make_policy(max_leases_per_user=3))


def active(kit: Harness, user: str) -> Lease:
    return kit.claims.start(kit.claims.claim(user_id=user, duration=timedelta(hours=8)).id or 0)


def get(kit: Harness, lease: Lease) -> Lease:
    return kit.res.db.run(lambda s: LeaseRepo(s).get(lease.id or 0))


def ticks(kit: Harness, n: int, every: timedelta = M) -> None:
    for _ in range(n):
        kit.clock.advance(every)
        kit.idle.sample()


def test_a_quiet_lease_is_warned_then_reclaimed_for_the_one_who_waits(kit: Harness) -> None:
    a = active(kit, "UA")
    kit.idle.sample()  # the first sample: quiet from here on
    b = kit.claims.claim(user_id="UB", duration=timedelta(hours=1))
    assert b.status is S.QUEUED
    ticks(kit, 9)
    assert kit.notifier.of("idle_warning") == []
    ticks(kit, 1)  # idle for 10 minutes, someone waits
    [warning] = kit.notifier.of("idle_warning")
    assert warning.lease_id == a.id
    assert warning.data["reclaim_at"] == get(kit, a).idle_since + RULES.reclaim_after
    ticks(kit, 9)
    assert get(kit, a).status is S.ACTIVE
    ticks(kit, 1)  # idle for 20 minutes, warned 10 minutes ago
    ended = get(kit, a)
    assert ended.status is S.EXPIRED and ended.end_reason == "idle"
    assert [s.lease_id for s in kit.notifier.of("idle_reclaimed")] == [a.id]
    assert get(kit, b).status is S.ACTIVE  # the waiter has the GPU
    assert ended.util_samples == ended.idle_samples == 21  # idle from the first sample on


def test_nobody_waiting_nothing_is_warned_or_reclaimed(kit: Harness) -> None:
    a = active(kit, "UA")
    ticks(kit, 60)
    assert get(kit, a).status is S.ACTIVE and get(kit, a).idle_since is not None
    assert kit.notifier.of("idle_warning") == []


def test_a_busy_kernel_is_never_idle(kit: Harness) -> None:
    a = active(kit, "UA")
    kit.claims.claim(user_id="UB", duration=timedelta(hours=1))
    kit.probe.set(a.id, busy=True)  # 0 % on the GPU, but a kernel executes
    ticks(kit, 60)
    assert get(kit, a).status is S.ACTIVE and get(kit, a).idle_since is None
    assert kit.notifier.of("idle_warning") == []


def test_recent_jupyter_activity_or_a_busy_gpu_resets_the_count(kit: Harness) -> None:
    a = active(kit, "UA")
    kit.claims.claim(user_id="UB", duration=timedelta(hours=1))
    ticks(kit, 8)
    kit.probe.set(a.id, last_activity=kit.clock.now() + timedelta(seconds=30))  # typing
    ticks(kit, 1)
    assert get(kit, a).idle_since is None
    kit.probe.set(a.id)
    ticks(kit, 8)
    kit.inventory.set(0, utilization_percent=97)  # a matmul loop
    ticks(kit, 1)
    assert get(kit, a).idle_since is None and kit.notifier.of("idle_warning") == []


def test_still_using_it_keeps_the_lease_for_the_snooze(kit: Harness) -> None:
    a = active(kit, "UA")
    kit.claims.claim(user_id="UB", duration=timedelta(hours=1))
    ticks(kit, 11)
    assert len(kit.notifier.of("idle_warning")) == 1
    kept = kit.idle.still_using(user_id="UA", lease_id=a.id or 0)
    assert kept.snoozed_until == kit.clock.now() + RULES.snooze
    ticks(kit, 29)
    assert get(kit, a).status is S.ACTIVE and get(kit, a).idle_since is None
    ticks(kit, 1 + 10)  # the snooze is over: idle again for 10 minutes, warned again
    assert len(kit.notifier.of("idle_warning")) == 2 and get(kit, a).status is S.ACTIVE


def test_the_warning_comes_in_time_when_someone_starts_waiting_late(kit: Harness) -> None:
    a = active(kit, "UA")
    ticks(kit, 60)  # idle for an hour, nobody waiting
    kit.claims.claim(user_id="UB", duration=timedelta(hours=1))
    ticks(kit, 1)
    [warning] = kit.notifier.of("idle_warning")
    assert warning.data["reclaim_at"] == kit.clock.now() + RULES.notice
    ticks(kit, 9)
    assert get(kit, a).status is S.ACTIVE  # never reclaimed before the notice is up
    ticks(kit, 1)
    assert get(kit, a).status is S.EXPIRED


def test_one_waiter_reclaims_one_lease(db: Database) -> None:
    kit = build_harness(db, inventory=FakeInventory(2), idle=RULES,
                        policy=make_policy(max_leases_per_user=3))
    a, b = active(kit, "UA"), active(kit, "UB")
    kit.claims.claim(user_id="UC", duration=timedelta(hours=1))
    ticks(kit, 25)
    assert sorted(get(kit, x).status for x in (a, b)) == [S.ACTIVE, S.EXPIRED]
    assert len(kit.notifier.of("idle_warning")) == 1


def test_an_admin_can_exempt_a_lease(kit: Harness) -> None:
    a = active(kit, "UA")
    kit.idle.exempt(admin_id="UADMIN1", lease_id=a.id or 0)
    kit.claims.claim(user_id="UB", duration=timedelta(hours=1))
    ticks(kit, 60)
    assert get(kit, a).status is S.ACTIVE and kit.notifier.of("idle_warning") == []
    with pytest.raises(Exception, match="Only a gpubot admin"):
        kit.idle.exempt(admin_id="UA", lease_id=a.id or 0)


def test_samples_add_up_to_the_receipt(kit: Harness) -> None:
    a = active(kit, "UA")
    for util, mem in ((80, 10), (40, 30), (0, 20)):
        kit.inventory.set(0, utilization_percent=util, memory_used_bytes=mem * 1024**3)
        ticks(kit, 1)
    lease = get(kit, a)
    assert (lease.util_sum, lease.util_samples, lease.util_peak) == (120, 3, 80)
    assert lease.mem_peak_mib == 30 * 1024 and lease.idle_samples == 1
