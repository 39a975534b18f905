"""The bot's services on the Slurm engine (GPUBOT_ENGINE=slurm) against the real test
cluster, built by the composition root as `gpubot serve` builds them: the partition's GPUs
are the inventory, a lease's job is pinned to the node its GPUs were granted on, its
access URL is that node's, an extend moves Slurm's time limit, release and expiry cancel
(the workspace stays), a full
cluster queues in gpubot's fair queue, a job Slurm holds pending shows in `/gpu queue`,
and a lost node fails its lease with "host lost" and is not granted again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.adapters.slurm_inventory import SlurmInventory
from bot.adapters.slurm_rest import SlurmRest
from bot.adapters.slurm_state import slot_node
from bot.db import migrate
from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.domain.lease import Lease, LeaseStatus
from bot.services.views import GpuState, gpu_table
from handlers.contention_blocks import queue_message
from tests.fakes.clock import FakeClock
from tests.fakes.services import Harness, build_harness, make_policy
from tests.infra import slurm_engine as eng
from tests.infra.slurm_cluster import GPUS_PER_NODE, NODES, Cluster
from tests.support import jupyter
from tests.support.lease_ids import start_lease_ids_at

pytestmark = pytest.mark.slurm
HOST = "slurm-bot"
H = timedelta(hours=1)


def rest_of(cluster: Cluster) -> SlurmRest:
    return SlurmRest(cluster.url, token_file=cluster.token_file, user=cluster.user)


@pytest.fixture
def kit(cluster: Cluster, sqlite_url: str) -> Iterator[Harness]:
    migrate.upgrade(sqlite_url)
    db = Database(sqlite_url)
    start_lease_ids_at(db, eng.lease_block())
    runtime = eng.make_runtime(cluster, host=HOST)
    inventory = SlurmInventory(rest_of(cluster), partition=cluster.partition, host=HOST, ttl=0)
    kit = build_harness(db, inventory=inventory, runtime=runtime, port_range=eng.port_block(),
                        clock=FakeClock(datetime.now(UTC)),  # Slurm's clock is the real one
                        workspace_root=eng.workspaces(cluster), public_host="bot.example",
                        ready_timeout=timedelta(seconds=120),
                        policy=make_policy(max_leases_per_user=8), host=HOST)
    yield kit
    db.dispose()


def reread(kit: Harness, lease_id: int) -> Lease:
    return kit.res.db.run(lambda s: LeaseRepo(s).get(lease_id))


def wait_for(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{check} never held"
        time.sleep(0.3)
    return found


def job_of(cluster: Cluster, lease_id: int) -> str:
    return cluster.run("scontrol", "show", "job", str(eng.job_id_of(cluster, lease_id)))


def test_a_claim_runs_on_the_granted_node_and_its_url_is_the_nodes(
        kit: Harness, cluster: Cluster) -> None:
    lease = kit.claims.start(kit.claims.claim(user_id="USLURMA", duration=2 * H).id or 0)
    assert lease.status is LeaseStatus.ACTIVE, kit.notifier.kinds()
    [granted] = lease.gpu_uuids
    placement = kit.runtime.placement(lease.id)
    assert placement is not None and placement.node == slot_node(granted)  # pinned there
    assert f"ReqNodeList={placement.node}" in job_of(cluster, lease.id or 0)
    [dm] = kit.notifier.of("access_ready")
    assert dm.data["url"] == f"http://127.0.0.1:{lease.port}/lab"  # the node's address
    assert jupyter.logs_in(dm.data["url"].removesuffix("/lab"), dm.data["password"])
    assert "TimeLimit=03:00:00" in job_of(cluster, lease.id or 0)  # 2 h + the 1 h grace

    kit.leases.extend(user_id="USLURMA", duration=24 * H)  # an effect after the commit
    job = rest_of(cluster).job(eng.job_id_of(cluster, lease.id or 0)) or {}
    extended = reread(kit, lease.id or 0)
    limit = (extended.expires_at.timestamp() + 3600 - int(job["start_time"])) / 60
    assert int(job["time_limit"]) == -int(-limit // 1)  # the new end plus the grace

    kit.leases.release(user_id="USLURMA")
    state = eng.wait_ended(cluster, eng_job := int(job["job_id"]))
    assert state in ("", "CANCELLED"), state
    assert "CANCELLED" in cluster.run("sacct", "-X", "-n", "-j", str(eng_job), "-o", "State")


def test_expiry_cancels_the_job_and_keeps_the_workspace(kit: Harness, cluster: Cluster) -> None:
    lease = kit.claims.start(kit.claims.claim(user_id="USLURME", duration=H).id or 0)
    job = eng.job_id_of(cluster, lease.id or 0)
    kit.clock.advance(H + timedelta(seconds=1))
    assert kit.lifecycle.expire() == 1
    assert eng.wait_ended(cluster, job) in ("", "CANCELLED")
    assert "CANCELLED" in cluster.run("sacct", "-X", "-n", "-j", str(job), "-o", "State")
    assert reread(kit, lease.id or 0).status is LeaseStatus.EXPIRED
    assert kit.notifier.of("expired") and (eng.workspaces(cluster) / "USLURME").is_dir()


def test_a_full_cluster_queues_in_gpubots_line_and_a_release_starts_the_next(
        kit: Harness, cluster: Cluster) -> None:
    total = len(NODES) * GPUS_PER_NODE
    held = [kit.claims.start(kit.claims.claim(user_id=f"USLURM{i}", duration=H).id or 0)
            for i in range(total)]
    assert [lease.status for lease in held] == [LeaseStatus.ACTIVE] * total
    assert {slot_node(u) for lease in held for u in lease.gpu_uuids} == set(NODES)
    waiting = kit.claims.claim(user_id="USLURMW", duration=H)
    assert waiting.status is LeaseStatus.QUEUED  # gpubot's fair queue, no job submitted
    assert not cluster.run("squeue", "-h", "-n", f"gpubot-{waiting.id}", "-o", "%i").strip()

    placed = {lease.id: kit.runtime.placement(lease.id) for lease in held}
    pairs = {(p.node, i) for p in placed.values() if p for i in p.gpu_indices}
    assert len(pairs) == total, placed  # every GPU once, as the jobs themselves report
    accounted = eng.gpu_indices(cluster)  # and as slurmctld accounts them
    assert sorted((n, i) for n, idx in accounted.values() for i in idx) == sorted(pairs)

    kit.leases.release(user_id="USLURM0")  # the pass grants it; its start follows
    started = reread(kit, waiting.id or 0)
    assert started.status is LeaseStatus.ACTIVE, kit.notifier.kinds(waiting.id)
    assert set(started.gpu_uuids) == set(held[0].gpu_uuids)
    freed, got = placed[held[0].id], kit.runtime.placement(waiting.id)
    assert freed and got and (got.node, got.gpu_indices) == (freed.node, freed.gpu_indices)
    indices = eng.gpu_indices(cluster)
    pairs_now = [(n, i) for n, idx in indices.values() for i in idx]
    assert len(pairs_now) == len(set(pairs_now)) == total, f"a GPU index held twice: {indices}"


def test_a_job_slurm_holds_pending_is_shown_in_the_queue_and_starts_when_placed(
        kit: Harness, cluster: Cluster) -> None:
    kit.inventory.ttl = 600
    assert {row.state for row in gpu_table(kit.res)} == {GpuState.FREE}  # read, kept
    rest = rest_of(cluster)
    blocker = rest.submit("#!/bin/bash\nsleep 600\n", {  # another cluster user's job
        "name": "someone-else", "partition": cluster.partition, "nodelist": NODES[0],
        "gpus_per_node": f"a100:{GPUS_PER_NODE}", "cpus_per_task": 1, "memory_per_node": 64,
        "time_limit": 10, "current_working_directory": "/tmp", "environment": {"PATH": "/bin"}})
    wait_for(lambda: (rest.job(blocker) or {}).get("job_state") == "RUNNING")

    # gpubot's view is a second old: it grants a GPU of the node the blocker just took.
    lease = kit.claims.claim(user_id="USLURMC", duration=H)
    assert {slot_node(u) for u in lease.gpu_uuids} == {NODES[0]}
    starting = threading.Thread(target=kit.claims.start, args=(lease.id,))
    starting.start()
    try:
        line = wait_for(lambda: [w for w in kit.queue.engine_line() if w[1].reason == "Resources"])
        [(waiting, wait)] = line
        assert waiting.id == lease.id
        assert (wait.place, wait.of) == (1, 1)
        _, blocks = queue_message(kit.queue.line(), kit.clock.now(), line)
        assert f"lease {lease.id}: #1 of 1 in the cluster's queue ({wait.reason})" in str(blocks)

        kit.inventory.ttl = 0  # the live view: the blocker's other GPU is busy
        rows = {row.gpu.uuid: row.state for row in gpu_table(kit.res)}
        assert rows[f"SLURM-{NODES[0]}/1"] is GpuState.BUSY
        other = kit.claims.start(kit.claims.claim(user_id="USLURMB", duration=H).id or 0)
        assert {slot_node(u) for u in other.gpu_uuids} == {NODES[1]}
    finally:
        rest.cancel(blocker)
        starting.join(timeout=150)
    assert reread(kit, lease.id or 0).status is LeaseStatus.ACTIVE, kit.notifier.kinds(lease.id)
    assert kit.queue.engine_line() == []


def test_a_lost_node_fails_its_lease_with_host_lost_and_is_not_granted_again(
        kit: Harness, cluster: Cluster) -> None:
    lease = kit.claims.start(kit.claims.claim(user_id="USLURMD", duration=H).id or 0)
    node = slot_node(lease.gpu_uuids[0]) or ""
    cluster.kill_node(node)
    try:
        deadline = time.monotonic() + 90  # SlurmdTimeout=10 s, then the controller decides
        while True:
            kit.reconciler.run()
            ended = reread(kit, lease.id or 0)
            if ended.status is LeaseStatus.FAILED:
                break
            assert time.monotonic() < deadline, f"lease still {ended.status}"
            time.sleep(1)
        [died] = kit.notifier.of("container_died")
        assert "host lost" in str(died.data), died
        rows = {row.gpu.uuid: row for row in gpu_table(kit.res)}
        lost = [r for u, r in rows.items() if slot_node(u) == node]
        assert lost and all(r.state is GpuState.UNHEALTHY for r in lost)
        assert all(node in (r.gpu.health_reason or "") for r in lost)
        assert not any(r.lease for r in rows.values()), "the failed lease's GPU is free"
        again = kit.claims.start(kit.claims.claim(user_id="USLURMD", duration=H).id or 0)
        assert again.status is LeaseStatus.ACTIVE
        assert {slot_node(u) for u in again.gpu_uuids} != {node}
    finally:
        eng.cancel_all(cluster)
        cluster.start_node(node)
        cluster.wait_nodes("idle", timeout=120)
