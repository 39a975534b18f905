"""The use cases end to end over hand-written fakes, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from bot.db.repo import LeaseRepo
from bot.domain.allocation import UnknownModel
from bot.domain.errors import (AlreadyDecided, DomainError, LeaseLimitReached, LeaseNotFound,
                               NoGpuFree, NotAllowed)
from bot.domain.lease import LeaseStatus as S
from bot.security import verify_jupyter_password
from tests.fakes.containers import FakeContainerRuntime
from tests.fakes.services import Harness, build_harness

H = timedelta(hours=1)


@pytest.fixture
def kit(db) -> Harness:
    return build_harness(db)


def claim_and_start(kit: Harness, user: str = "U1", duration: timedelta = 24 * H, **kw):
    lease = kit.claims.claim(user_id=user, duration=duration, **kw)
    return kit.claims.start(lease.id)


def test_claim_to_active_with_access_dm(kit: Harness) -> None:
    lease = claim_and_start(kit)
    assert lease.status is S.ACTIVE
    assert lease.expires_at == kit.clock.now() + 24 * H
    assert lease.port == 8800 and lease.container_name == f"gpubot-{lease.id}"
    spec = kit.runtime.started[0]
    assert spec.gpu_uuids == lease.gpu_uuids and spec.user_id == "U1"
    ready = kit.notifier.of("access_ready")[0]
    assert ready.data["url"] == "http://gpu.lab.example:8800/lab"
    password = ready.data["password"]
    assert len(password) >= 16 and verify_jupyter_password(spec.password_hash, password)
    assert password not in spec.password_hash
    assert kit.notifier.kinds(lease.id)[0] == "progress"
    assert "GPU 0 (NVIDIA H100" in kit.notifier.of("progress")[0].data["text"]


def test_password_is_stored_encrypted(kit: Harness, db) -> None:
    lease = claim_and_start(kit)
    password = kit.notifier.of("access_ready")[0].data["password"]
    with db.transaction() as s:
        stored = LeaseRepo(s).get(lease.id).password_token
    assert password not in stored and kit.res.vault.decrypt(stored) == password


def test_start_failure_leaves_nothing_and_frees_the_gpu(kit: Harness) -> None:
    kit.runtime.fail_next_start("OCI runtime create failed: nvidia-container-cli: device error")
    lease = claim_and_start(kit)
    assert lease.status is S.FAILED and "could not start" in lease.failure_reason
    assert kit.runtime.list_managed() == []
    assert kit.notifier.of("claim_failed")[0].data["reason"] == lease.failure_reason
    with kit.res.db.transaction() as s:
        assert LeaseRepo(s).allocation_counts() == (0, 0)
    again = claim_and_start(kit)  # the GPU and the port rest (least recently used first)
    assert again.status is S.ACTIVE and again.port == 8801 and again.gpu_uuids != lease.gpu_uuids


def test_not_ready_in_time_fails_and_removes_the_container(kit: Harness) -> None:
    kit.runtime.not_ready()
    lease = claim_and_start(kit)
    assert lease.status is S.FAILED and "did not answer" in lease.failure_reason
    assert kit.runtime.list_managed() == [] and kit.runtime.stopped == [lease.id]


def test_missing_image_is_a_clear_failure(kit: Harness) -> None:
    kit.runtime.remove_image()
    lease = claim_and_start(kit)
    assert lease.status is S.FAILED and "not on this host" in lease.failure_reason


def test_release_during_start_wins(db) -> None:
    kit = build_harness(db)
    lease = kit.claims.claim(user_id="U1", duration=H)
    kit.leases.release(user_id="U1", lease_id=lease.id)
    final = kit.claims.start(lease.id)
    assert final.status is S.RELEASED and kit.runtime.list_managed() == []


def test_release_stops_container_and_frees(kit: Harness) -> None:
    lease = claim_and_start(kit)
    released = kit.leases.release(user_id="U1")
    assert released.status is S.RELEASED and kit.runtime.stopped == [lease.id]
    with kit.res.db.transaction() as s:
        assert LeaseRepo(s).allocation_counts() == (0, 0)
    with pytest.raises(LeaseNotFound):
        kit.leases.release(user_id="U1")
    with pytest.raises(DomainError, match="already ended"):
        kit.leases.release(user_id="U1", lease_id=lease.id)


def test_nobody_touches_someone_elses_lease(kit: Harness) -> None:
    lease = claim_and_start(kit, "U1")
    for action in (lambda: kit.leases.release(user_id="U2", lease_id=lease.id),
                   lambda: kit.leases.extend(user_id="U2", duration=H, lease_id=lease.id),
                   lambda: kit.leases.resend_access(user_id="U2", lease_id=lease.id)):
        with pytest.raises(LeaseNotFound, match=f"no lease {lease.id}"):
            action()
    assert kit.leases.release(user_id="UADMIN1", lease_id=lease.id).status is S.RELEASED


def test_extend_and_its_limits(kit: Harness) -> None:
    lease = claim_and_start(kit, duration=24 * H)
    extended = kit.leases.extend(user_id="U1", duration=4 * H)
    assert extended.expires_at == lease.expires_at + 4 * H
    with pytest.raises(NotAllowed, match="need an admin"):
        kit.leases.extend(user_id="U1", duration=3 * 24 * H)
    with pytest.raises(DomainError, match="maximum"):
        kit.leases.extend(user_id="UADMIN1", lease_id=lease.id, duration=7 * 24 * H)


def test_no_gpu_free_and_unhealthy_or_foreign_busy_gpus(kit: Harness) -> None:
    kit.inventory.set(0, healthy=False, health_reason="GPU is lost")
    kit.inventory.make_busy(1)
    claim_and_start(kit, "U1")
    claim_and_start(kit, "U2")
    waiting = kit.claims.claim(user_id="U3", duration=H)  # queued, and told why
    assert waiting.status is S.QUEUED
    assert "4 in all: 2 leased, 1 busy outside gpubot, 1 unhealthy" in \
        kit.gpubot.use_cases.why_waiting(waiting)
    alert = kit.notifier.of("admin_alert")
    assert len(alert) == 1 and "PIDs 4242" in alert[0].data["text"]


def test_memory_hogs_and_unknown_process_lists_count_as_busy(kit: Harness) -> None:
    kit.inventory.set(0, memory_used_bytes=30 * 1024**3)  # no process NVML can see
    kit.inventory.set(1, processes_known=False, memory_used_bytes=None)  # nothing known
    claim_and_start(kit, "U1")
    claim_and_start(kit, "U2")
    waiting = kit.claims.claim(user_id="U3", duration=H)
    assert waiting.status is S.QUEUED
    assert "4 in all: 2 leased, 2 busy outside gpubot)" in kit.gpubot.use_cases.why_waiting(waiting)


def test_model_filter(kit: Harness) -> None:
    with pytest.raises(UnknownModel, match="a100"):  # refused, never queued (issue 11.1)
        kit.claims.claim(user_id="U1", duration=H, model="a100")
    assert claim_and_start(kit, model="h100").status is S.ACTIVE


def test_per_user_limit(kit: Harness) -> None:
    claim_and_start(kit)
    claim_and_start(kit)
    with pytest.raises(LeaseLimitReached):
        kit.claims.claim(user_id="U1", duration=H)


def test_approval_path(kit: Harness) -> None:
    lease = kit.claims.claim(user_id="U1", duration=4 * 24 * H)
    assert lease.status is S.PENDING_APPROVAL and lease.gpu_uuids == ()
    assert kit.notifier.kinds(lease.id) == ["approval_requested"]
    with pytest.raises(NotAllowed):
        kit.approvals.approve(lease_id=lease.id, admin_id="U2")
    approved = kit.approvals.approve(lease_id=lease.id, admin_id="UADMIN1")
    assert approved.status is S.STARTING and approved.decision_by == "UADMIN1"
    assert len(approved.gpu_uuids) == 1
    with pytest.raises(AlreadyDecided, match="UADMIN1"):
        kit.approvals.approve(lease_id=lease.id, admin_id="UADMIN2")
    assert kit.claims.start(lease.id).status is S.ACTIVE


def test_deny_path(kit: Harness) -> None:
    lease = kit.claims.claim(user_id="U1", duration=H, gpu_count=2)
    denied = kit.approvals.deny(lease_id=lease.id, admin_id="UADMIN2", reason="  not this week ")
    assert denied.status is S.DENIED and denied.decision_reason == "not this week"
    decided = kit.notifier.of("approval_decided")[0].data
    assert decided == {"approved": False, "by": "UADMIN2", "reason": "not this week"}
    with pytest.raises(AlreadyDecided):
        kit.approvals.approve(lease_id=lease.id, admin_id="UADMIN1")


def test_two_admins_approve_at_once_grant_once(db) -> None:
    kit = build_harness(db)
    lease = kit.claims.claim(user_id="U1", duration=H, gpu_count=2)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def click(admin: str) -> None:
        barrier.wait()
        try:
            kit.approvals.approve(lease_id=lease.id, admin_id=admin)
            outcomes.append("approved")
        except AlreadyDecided:
            outcomes.append("already")

    threads = [threading.Thread(target=click, args=(a,)) for a in ("UADMIN1", "UADMIN2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already", "approved"]
    with kit.res.db.transaction() as s:
        assert LeaseRepo(s).allocation_counts() == (2, 1)


def test_resend_access(kit: Harness) -> None:
    lease = claim_and_start(kit)
    kit.leases.resend_access(user_id="U1")
    first = kit.notifier.of("access_ready")[0].data
    again = kit.notifier.of("access_resend")[0].data
    assert again == first and kit.notifier.of("access_resend")[0].lease_id == lease.id


def test_runtime_start_is_idempotent_for_the_same_lease() -> None:
    runtime = FakeContainerRuntime()
    from bot.ports import ContainerSpec

    spec = ContainerSpec(lease_id=1, user_id="U1", gpu_uuids=(), port=8800, password_hash="argon2:x")
    assert runtime.start(spec) == runtime.start(spec)


def test_two_starts_racing_leave_one_running_container(kit: Harness) -> None:
    """The reconciler may recover a start while the first one still waits for Jupyter:
    the loser must neither stop the winner's container nor send a second access DM."""
    lease = kit.claims.claim(user_id="U1", duration=H)
    runtime = kit.runtime
    original = runtime.wait_ready

    def slow_wait(handle, *, port, timeout):  # the second start finishes while we wait
        runtime.wait_ready = original
        kit.claims.start(lease.id)
        original(handle, port=port, timeout=timeout)

    runtime.wait_ready = slow_wait
    final = kit.claims.start(lease.id)
    assert final.status is S.ACTIVE
    assert runtime.stopped == [] and len(runtime.list_managed()) == 1
    assert len(kit.notifier.of("access_ready")) == 1


def test_a_foreign_listener_costs_one_retry_not_every_claim(kit: Harness) -> None:
    """Something outside gpubot listens on 8800 (issue 11.5): the claim moves on to
    another port, and later claims no longer start on 8800 first."""
    kit.runtime.foreign_ports.add(8800)
    first = claim_and_start(kit, "U1")
    assert first.status is S.ACTIVE and first.port == 8801
    second = claim_and_start(kit, "U2")
    assert second.status is S.ACTIVE and second.port == 8802
    assert [spec.port for spec in kit.runtime.started] == [8801, 8802]
    with kit.res.db.transaction() as s:
        assert LeaseRepo(s).taken_ports("gpu-host-1") == {8801, 8802}


def test_ports_are_reused_least_recently_used_first(kit: Harness) -> None:
    leases = [claim_and_start(kit, f"U{i}") for i in range(3)]
    assert [lease.port for lease in leases] == [8800, 8801, 8802]
    for lease in leases[:2]:
        kit.leases.release(user_id=lease.user_id, lease_id=lease.id)
    kit.clock.advance(timedelta(minutes=1))
    assert claim_and_start(kit, "U9").port == 8803  # never used ports first


def test_each_person_gets_their_own_uid_kept_across_leases(kit: Harness) -> None:
    """Issue 11.15: not one uid 1000 for everyone."""
    a1 = claim_and_start(kit, "U1")
    b = claim_and_start(kit, "U2")
    kit.leases.release(user_id="U1", lease_id=a1.id)
    a2 = claim_and_start(kit, "U1")
    uids = {spec.lease_id: spec.uid for spec in kit.runtime.started}
    low, high = kit.res.config.uid_range
    assert uids[a1.id] == uids[a2.id] != uids[b.id]
    assert all(low <= uid <= high for uid in uids.values()) and 1000 not in uids.values()
