"""The Slurm engine against a real two-node cluster (2 nodes x 2 fake GPUs): placement
and GPU accounting, scancel on stop, a lost node, an unreachable slurmrestd, extend, and
the password hash kept off every command line."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.slurm import SlurmRuntime
from bot.adapters.slurm_rest import SlurmRest, SlurmUnavailable
from bot.domain.containers import death_reason
from bot.ports import ContainerSpec, ContainerStatus
from bot.security import hash_jupyter_password
from tests.infra import slurm_engine as eng
from tests.infra.slurm_cluster import Cluster

pytestmark = pytest.mark.slurm

HASH = hash_jupyter_password("slurm-password")
READY = timedelta(seconds=120)


def spec(lease: int | None = None, user: str = "USLURM1") -> ContainerSpec:
    return ContainerSpec(lease_id=lease or eng.new_lease(), user_id=user,
                         gpu_uuids=("GPU-5a5a5a5a-0000-4000-8000-000000000001",),
                         port=eng.new_port(), password_hash=HASH)


def sacct_gpus(cluster: Cluster) -> dict[str, tuple[str, str]]:
    """Job id -> (state, node list) of every job with a GPU, from accounting (sacct)."""
    out = cluster.run("sacct", "-X", "-n", "-P", "-u", cluster.user, "-o", "JobID,State,NodeList,AllocTRES")
    rows = [line.split("|") for line in out.splitlines() if "gres/gpu=1" in line]
    return {job: (state, nodes) for job, state, nodes, _tres in rows}


def job_processes(job_id: int) -> list[int]:
    """Every process that runs inside the job (its environment says so)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"SLURM_JOB_ID={job_id}".encode() in env:
            found.append(int(pid))
    return found


def test_stop_is_scancel_and_leaves_no_process_and_no_hash(cluster: Cluster, runtime: SlurmRuntime) -> None:
    s = spec()
    handle = runtime.start(s)
    runtime.wait_ready(handle, port=s.port, timeout=READY)
    job = int(handle.container_id)
    processes = job_processes(job)
    assert processes, "Jupyter runs inside the job"
    for pid in processes:  # the hash is read from its 0600 file, never passed on argv
        assert HASH.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        assert HASH.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
    hash_file = cluster.shared / "gpubot-run" / f"lease-{s.lease_id}" / "password-hash"
    assert oct(hash_file.stat().st_mode & 0o777) == "0o600"

    runtime.stop(s.lease_id)
    assert cluster.run("sacct", "-X", "-n", "-j", str(job), "-o", "State").split()[0].startswith("CANCELLED")
    assert job_processes(job) == []
    assert not hash_file.exists()
    assert runtime.poll(s.lease_id).status is ContainerStatus.GONE
    workspace = eng.workspaces(cluster) / s.user_id
    assert workspace.is_dir(), "the workspace outlives the lease"


def test_the_job_limit_is_the_lease_plus_the_grace_and_an_extend_moves_it(
        cluster: Cluster, runtime: SlurmRuntime) -> None:
    s = replace(spec(), time_limit=timedelta(hours=5))
    runtime.wait_ready(runtime.start(s), port=s.port, timeout=READY)
    job = eng.job_id_of(cluster, s.lease_id)
    assert "TimeLimit=06:00:00" in cluster.run("scontrol", "show", "job", str(job))  # + 1 h grace
    record = SlurmRest(cluster.url, token_file=cluster.token_file, user=cluster.user).job(job)
    started = int((record or {})["start_time"])
    # raising a limit is an operator's right: the token's user has adminlevel=operator
    runtime.set_end(s.lease_id, datetime.fromtimestamp(started, UTC) + timedelta(hours=29))
    assert "TimeLimit=1-06:00:00" in cluster.run("scontrol", "show", "job", str(job))


def test_an_unreachable_slurmrestd_is_never_read_as_gone(cluster: Cluster, runtime: SlurmRuntime) -> None:
    s = spec()
    runtime.start(s)
    unreachable = eng.make_runtime(cluster, url=f"http://127.0.0.1:{eng.new_port()}")
    with pytest.raises(SlurmUnavailable):
        unreachable.list_managed()
    with pytest.raises(SlurmUnavailable):
        unreachable.poll(s.lease_id)
    with pytest.raises(SlurmUnavailable):
        unreachable.stop(s.lease_id)
    assert runtime.poll(s.lease_id).status is ContainerStatus.RUNNING  # nothing was touched


def test_a_lost_node_fails_the_lease_with_host_lost(cluster: Cluster, runtime: SlurmRuntime) -> None:
    s = spec()
    handle = runtime.start(s)
    runtime.wait_ready(handle, port=s.port, timeout=READY)
    placement = runtime.placement(s.lease_id)
    assert placement is not None
    cluster.kill_node(placement.node)
    try:
        deadline = time.monotonic() + 90  # SlurmdTimeout=10 s, then the controller decides
        while (state := runtime.poll(s.lease_id)).status is not ContainerStatus.EXITED:
            assert time.monotonic() < deadline, f"still {state} after the node was lost"
            time.sleep(1)
        assert state.error and "host lost" in state.error and placement.node in state.error
        assert "host lost" in death_reason(state)
        [managed] = [m for m in runtime.list_managed() if m.lease_id == s.lease_id]
        assert managed.state.status is ContainerStatus.EXITED  # the reconciler fails the lease
        out = cluster.run("sacct", "-X", "-n", "-j", handle.container_id, "-o", "State")
        assert out.split()[0] == "NODE_FAIL"
    finally:
        cluster.start_node(placement.node)
        cluster.wait_nodes("idle", timeout=120)


def test_doctor_checks_pass_on_the_cluster_and_name_what_is_wrong(cluster: Cluster) -> None:
    from bot.adapters.slurm_checks import run_slurm_checks
    from bot.adapters.slurm_rest import SlurmRest

    rest = SlurmRest(cluster.url, token_file=cluster.token_file, user=cluster.user)
    good = run_slurm_checks(rest, user=cluster.user, partition=cluster.partition,
                            time_limit=timedelta(days=6), gpu_type="a100")
    assert [(c.name, c.ok) for c in good] == [("slurmrestd", True), ("operator", True),
                                              ("partition", True), ("gres", True)], good
    assert "4 x gpu:a100 on 2 nodes" in good[3].detail
    bad = {c.name: c for c in run_slurm_checks(rest, user=cluster.user, partition=cluster.partition,
                                               time_limit=timedelta(days=8), gpu_type="h100")}
    assert not bad["partition"].ok and "10080" in bad["partition"].detail
    assert not bad["gres"].ok
    down = SlurmRest(f"http://127.0.0.1:{eng.new_port()}", token_file=cluster.token_file, user=cluster.user)
    [only] = run_slurm_checks(down, user=cluster.user, partition=cluster.partition, time_limit=timedelta(days=1))
    assert (only.name, only.ok) == ("slurmrestd", False)


def test_two_racing_starts_of_one_lease_leave_one_job(cluster: Cluster, runtime: SlurmRuntime,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Another start of the same lease (a second bot, a reconciler) submitted its job just
    before ours: the oldest is kept by both, ours is cancelled, and it never ran."""
    s = spec()
    submit, submitted = runtime._rest.submit, []

    def racing_submit(script: str, job: dict, **how: object) -> int:
        if not submitted:
            submitted.append(submit(script, job, **how))  # the other racer's, a moment earlier
        submitted.append(submit(script, job, **how))
        return submitted[-1]

    monkeypatch.setattr(runtime._rest, "submit", racing_submit)
    handle = runtime.start(s)
    first, ours = submitted
    assert int(handle.container_id) == first
    runtime.wait_ready(handle, port=s.port, timeout=READY)
    assert eng.wait_ended(cluster, ours) in ("", "CANCELLED")
    [alive] = [m for m in runtime.list_managed() if m.lease_id == s.lease_id]
    assert alive.container_id == str(first)
    ran = cluster.run("sacct", "-X", "-n", "-P", "-j", str(ours), "-o", "State,NodeList")
    assert ran.startswith("CANCELLED") and "None assigned" in ran, ran  # singleton: never ran
