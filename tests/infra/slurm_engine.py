"""The test cluster, once per test process, and the Slurm engine built on it.

One cluster serves every Slurm test in the session (the contract suite in tests/contract
and tests/slurm); it starts on first use and its daemons are stopped by PID when the
process exits. Under CI=true a missing part fails instead of skipping (``need``).
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import subprocess
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.adapters.slurm import SlurmRuntime, SlurmRuntimeConfig, env_dir
from tests.infra.slurm_cluster import ENV_ROOT, GPU_TYPE, Cluster, missing_parts, start_cluster
from tests.support.engines import need

IMAGE = os.environ.get("GPUBOT_TEST_IMAGE", "gpubot-jupyter:test")
_lock = threading.Lock()
_cluster: Cluster | None = None
_lease_ids = itertools.count(int(time.time()) % 100_000 * 10)  # fresh names per session
_ports = itertools.count(30000 + os.getpid() % 5000)


def shared_cluster() -> Cluster:
    global _cluster
    problem = missing_parts()
    if problem is None and not (env_dir(ENV_ROOT, IMAGE) / "venv" / "bin" / "jupyter").is_file():
        problem = f"no Jupyter environment exported from {IMAGE} under {ENV_ROOT} (setup_slurm.sh)"
    need(problem is None, f"Slurm test cluster: {problem}", "run tests/infra/setup_slurm.sh as root")
    with _lock:
        if _cluster is None:
            _cluster = start_cluster()
            atexit.register(_cluster.stop)
        return _cluster


def new_lease() -> int:
    return next(_lease_ids)


def lease_block(size: int = 100) -> int:
    """The first of ``size`` fresh lease ids (a test database's own block)."""
    first = new_lease()
    for _ in range(size - 1):
        new_lease()
    return first


def port_block(size: int = 10) -> tuple[int, int]:
    """``size`` consecutive ports, none listening now (a test bot's GPUBOT_PORT_RANGE)."""
    low = new_port()
    for _ in range(size - 1):
        next(_ports)
    return low, low + size - 1


def new_port() -> int:
    import socket

    while True:
        port = next(_ports)
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port


def runtime_config(cluster: Cluster, **changes: Any) -> SlurmRuntimeConfig:
    config = SlurmRuntimeConfig(
        url=cluster.url, token_file=cluster.token_file, user=cluster.user,
        partition=cluster.partition, image=IMAGE, env_root=ENV_ROOT,
        workspace_root=cluster.shared / "workspaces", state_root=cluster.shared,
        host="slurm-tests", gpu_type=GPU_TYPE, cpus=1, memory_mb=512, time_limit=timedelta(hours=2),
        bind_address="127.0.0.1", stop_timeout=30.0, ready_poll_interval=0.2,
        event_poll_interval=0.3)
    return replace(config, **changes)


def make_runtime(cluster: Cluster, **changes: Any) -> SlurmRuntime:
    return SlurmRuntime(runtime_config(cluster, **changes))


def job_id_of(cluster: Cluster, lease_id: int) -> int:
    out = cluster.run("squeue", "-h", "-n", f"gpubot-{lease_id}", "-o", "%i %T")
    live = [int(line.split()[0]) for line in out.splitlines() if line.strip()]
    if not live:
        raise AssertionError(f"lease {lease_id} has no job in squeue: {out!r}")
    return max(live)


def kill_job(cluster: Cluster, lease_id: int) -> None:
    """The job's main process dies of SIGKILL (a crash, the OOM killer): not scancel."""
    job = job_id_of(cluster, lease_id)
    deadline = time.monotonic() + 60
    while True:  # it may still be pending or launching
        found = subprocess.run(["pgrep", "-f", rf"/job0*{job}/slurm_script$"],
                               capture_output=True, text=True).stdout.split()
        if found:
            subprocess.run(["kill", "-KILL", *found], check=True)
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job} never launched:\n{cluster.logs()}")
        time.sleep(0.2)
    wait_ended(cluster, job)


def vanish(cluster: Cluster, lease_id: int) -> None:
    """An admin's scancel, behind gpubot's back."""
    job = job_id_of(cluster, lease_id)
    cluster.run("scancel", str(job))
    wait_ended(cluster, job)


def wait_ended(cluster: Cluster, job: int, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = cluster.run("squeue", "-h", "-j", str(job), "-o", "%T", check=False).strip()
        if state in ("", "FAILED", "CANCELLED", "COMPLETED", "NODE_FAIL", "TIMEOUT"):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job} still {state}")
        time.sleep(0.2)


def cancel_all(cluster: Cluster) -> None:
    """Between tests: nothing of one test (any user's job) holds the next one's GPUs."""
    jobs = cluster.run("squeue", "-h", "-o", "%i", check=False).split()
    if jobs:
        cluster.run("scancel", *jobs, check=False)
    deadline = time.monotonic() + 60
    while cluster.run("squeue", "-h", "-t", "PD,R,CG,CF", "-o", "%i", check=False).strip():
        if time.monotonic() > deadline:
            raise AssertionError("jobs did not end:\n" + cluster.run("squeue", check=False))
        time.sleep(0.2)


def gpu_indices(cluster: Cluster) -> dict[int, tuple[str, tuple[int, ...]]]:
    """Running jobs -> (node, GPU indices) as slurmctld accounts them (scontrol -d)."""
    out = cluster.run("scontrol", "-d", "-o", "show", "job")
    found: dict[int, tuple[str, tuple[int, ...]]] = {}
    for line in out.splitlines():
        if "JobState=RUNNING" not in line:
            continue
        job = int(re.search(r"JobId=(\d+)", line).group(1))  # type: ignore[union-attr]
        for node, idx in re.findall(r"Nodes=(\S+) CPU_IDs=\S+ Mem=\d+ GRES=\S*?\(IDX:([\d,-]+)\)", line):
            found[job] = (node, tuple(_expand(idx)))
    return found


def _expand(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def workspaces(cluster: Cluster) -> Path:
    return cluster.shared / "workspaces"
