"""Idle sampling on a real GPU (issue 12.2): the idle sampler, over NvmlInventory, sees the
lease's GPU idle at rest and busy under a bf16 matmul loop, and records the receipt's
peak utilization and memory. Jupyter's side is a fake here (no Docker on GPU machines;
tests/integration/test_jupyter_idle.py covers the real one)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from bot.adapters.nvml import NvmlInventory
from bot.db import migrate
from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.domain.errors import GpuBackendUnavailable
from bot.domain.idle import IdleRules
from tests.fakes.services import build_harness

pytestmark = pytest.mark.gpu
LOAD = """
import sys, time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
print("loaded", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    for _ in range(20):
        a = (a @ a).clamp_(-1, 1)
    torch.cuda.synchronize()
"""


@pytest.fixture
def inventory():  # type: ignore[no-untyped-def]
    try:
        inv = NvmlInventory(host="gpu-host-1")
        if not inv.list_gpus():
            pytest.skip("NVML lists no GPU")
    except GpuBackendUnavailable as exc:
        pytest.skip(f"no NVML here: {exc.message}")
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    return inv


def test_the_sampler_sees_rest_as_idle_and_a_matmul_as_busy(inventory, tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/gpubot.db"
    migrate.upgrade(url)
    db = Database(url)
    kit = build_harness(db, inventory=inventory, idle=IdleRules(
        util_percent=5, warn_after=timedelta(hours=1), reclaim_after=timedelta(hours=2),
        snooze=timedelta(hours=1)), busy_memory_bytes=2 * 1024**3)
    lease = kit.claims.start(kit.claims.claim(user_id="UGPU0001", duration=timedelta(hours=1)).id)
    uuid = lease.gpu_uuids[0]

    def util() -> int | None:
        return next(g.utilization_percent for g in inventory.list_gpus() if g.uuid == uuid)

    rest = []
    for _ in range(6):
        kit.idle.sample()
        rest.append(util())
        time.sleep(0.5)
    at_rest = db.run(lambda s: LeaseRepo(s).get(lease.id))
    print(f"\n[idle] at rest: utilization {rest}, idle_since={at_rest.idle_since}")
    assert at_rest.idle_since is not None
    index = next(g.index for g in inventory.list_gpus() if g.uuid == uuid)
    child = subprocess.Popen([sys.executable, "-c", LOAD, "20"], stdout=subprocess.PIPE,
                             env={**__import__("os").environ, "CUDA_VISIBLE_DEVICES": str(index)},
                             text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "loaded"
        time.sleep(2)
        busy = []
        for _ in range(10):
            kit.idle.sample()
            busy.append(util())
            time.sleep(0.5)
        processes = next(g.processes for g in inventory.list_gpus() if g.uuid == uuid)
    finally:
        child.kill()
        child.wait()
    loaded = db.run(lambda s: LeaseRepo(s).get(lease.id))
    print(f"[idle] under a bf16 matmul: utilization {busy}, processes "
          f"{[(p.pid, p.used_memory_bytes) for p in processes]}, idle_since={loaded.idle_since}, "
          f"util_peak={loaded.util_peak} mem_peak_mib={loaded.mem_peak_mib} "
          f"samples={loaded.util_samples} idle_samples={loaded.idle_samples}")
    assert loaded.idle_since is None and loaded.util_peak >= 50
    assert child.pid in {p.pid for p in processes} or processes  # the loader is listed
    assert loaded.mem_peak_mib > 0 and loaded.idle_samples >= 6
    db.dispose()
