"""Idle detection against a real Jupyter in a real container (issue 12.2): the probe reads
a busy kernel as busy and a quiet one as quiet, and the whole reclaim path runs with it
(the GPU's utilization comes from a fake inventory: there is no GPU here)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from bot.adapters.jupyter_probe import HttpJupyterProbe
from bot.db.repo import LeaseRepo
from bot.domain.idle import IdleRules
from bot.domain.lease import Lease
from bot.domain.lease import LeaseStatus as S
from tests.fakes.gpus import FakeInventory
from tests.fakes.services import build_harness, make_policy
from tests.support.kernel import Kernel
from tests.support.lease_ids import start_lease_ids_at

pytestmark = pytest.mark.docker
S2 = timedelta(seconds=2)


class WallClock:
    """Jupyter's last_activity is wall time, so the services run on it here."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
def kit(db, make_runtime, lease_ids):
    start_lease_ids_at(db, lease_ids.block(1000))  # the session's clean-up removes ours
    return build_harness(db, runtime=make_runtime(), inventory=FakeInventory(1),
                         clock=WallClock(), probe=HttpJupyterProbe(host="127.0.0.1"),
                         idle=IdleRules(util_percent=5, warn_after=2 * S2,
                                        reclaim_after=4 * S2, snooze=timedelta(minutes=5)),
                         policy=make_policy(max_leases_per_user=3), port_range=_ports())


def _ports() -> tuple[int, int]:
    from tests.infra import docker_engine as eng

    low = eng.free_port()
    return low, low + 20


def started(kit, user: str) -> tuple[Lease, str]:
    lease = kit.claims.start(kit.claims.claim(user_id=user, duration=timedelta(hours=1)).id)
    assert lease.status is S.ACTIVE, lease.failure_reason
    password = kit.notifier.of("access_ready")[-1].data["password"]
    return lease, password


def status(kit, lease: Lease) -> S:
    return kit.res.db.run(lambda s: LeaseRepo(s).get(lease.id).status)


def sample_for(kit, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        kit.idle.sample()
        time.sleep(0.5)


def test_the_probe_reads_a_busy_and_a_quiet_kernel(kit) -> None:
    lease, password = started(kit, "UPROBE01")
    probe = kit.probe
    quiet = probe.activity(lease, password)
    assert quiet is not None and quiet.busy is False
    kernel = Kernel(f"http://127.0.0.1:{lease.port}", password)
    kernel.run("import time; time.sleep(20)")
    deadline = time.monotonic() + 20
    while not (busy := probe.activity(lease, password)).busy:
        assert time.monotonic() < deadline, "the kernel never read as busy"
        time.sleep(0.2)
    assert busy.last_activity is not None and busy.last_activity > quiet.last_activity
    assert probe.activity(lease, "wrong password") is not None  # the session is kept
    probe.forget(lease.id)
    assert probe.activity(lease, "wrong password") is None  # a new login is refused


def test_a_quiet_lease_is_reclaimed_for_a_waiter_and_a_busy_one_never(kit) -> None:
    busy, busy_password = started(kit, "UBUSY001")
    Kernel(f"http://127.0.0.1:{busy.port}", busy_password).run("import time; time.sleep(60)")
    waiter = kit.claims.claim(user_id="UWAIT001", duration=timedelta(hours=1))
    assert waiter.status is S.QUEUED
    sample_for(kit, 12)  # three times the reclaim delay
    assert status(kit, busy) is S.ACTIVE and kit.notifier.of("idle_warning") == []
    kit.leases.release(user_id="UBUSY001", lease_id=busy.id)  # the waiter gets the GPU
    assert status(kit, waiter) is S.ACTIVE
    password = kit.notifier.of("access_ready")[-1].data["password"]
    other = kit.claims.claim(user_id="UWAIT002", duration=timedelta(hours=1))
    assert other.status is S.QUEUED
    sample_for(kit, 12)  # the waiter's Jupyter is quiet: warned, then reclaimed
    assert [w.lease_id for w in kit.notifier.of("idle_warning")] == [waiter.id]
    assert status(kit, waiter) is S.EXPIRED and status(kit, other) is S.ACTIVE
    assert password
