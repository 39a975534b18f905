"""NvmlInventory against a real NVIDIA driver: lists the GPUs, then watches one turn busy
while a child process holds ~2 GiB of it through PyTorch, and free again afterwards.

Skipped, with the reason, where NVML or a GPU is absent (no CUDA-less machine can run
it); needs ``torch`` only for the busy/free test.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from bot.adapters.nvml import NvmlInventory
from bot.domain.errors import GpuBackendUnavailable
from bot.domain.gpus import GpuInfo
from tests.support.timing import list_gpus_seconds

pytestmark = pytest.mark.gpu

HOLD_BYTES = 2 * 1024**3
POLL_SECONDS = 20.0
CHILD = """
import sys, torch
block = torch.empty({size}, dtype=torch.uint8, device="cuda")
torch.cuda.synchronize()
print("holding", flush=True)
sys.stdin.read()  # until the parent closes our stdin
"""


@pytest.fixture(scope="module")
def inventory() -> Iterator[NvmlInventory]:
    try:
        inv = NvmlInventory(socket.gethostname())
    except GpuBackendUnavailable as exc:
        pytest.skip(f"no NVML here: {exc.message}")
    if not inv.list_gpus():
        inv.close()
        pytest.skip("NVML loaded but lists no GPU")
    yield inv
    inv.close()


def whole_healthy_gpu(inventory: NvmlInventory) -> GpuInfo:
    for gpu in inventory.list_gpus():
        if gpu.healthy and gpu.parent_uuid is None:
            return gpu
    pytest.skip("no healthy GPU outside MIG mode to load")


def poll(inventory: NvmlInventory, uuid: str, pid: int, *, listed: bool) -> GpuInfo | None:
    """The GPU as soon as ``pid`` is (or is no longer) among its processes, or None
    after POLL_SECONDS."""
    deadline = time.monotonic() + POLL_SECONDS
    while time.monotonic() < deadline:
        gpu = next(g for g in inventory.list_gpus() if g.uuid == uuid)
        if any(p.pid == pid for p in gpu.processes) == listed:
            return gpu
        time.sleep(0.25)
    return None


def test_lists_the_gpus_and_the_driver(inventory: NvmlInventory) -> None:
    gpus = inventory.list_gpus()
    for gpu in gpus:
        print(f"\n  {gpu}")
        assert re.match(r"^(GPU|MIG)-[0-9a-f-]{36}$", gpu.uuid), gpu.uuid
        assert gpu.name and gpu.memory_total_bytes and gpu.memory_total_bytes > 0
        assert gpu.pci_bus_id and re.match(r"^[0-9A-Fa-f]{8}:[0-9A-Fa-f]{2}:", gpu.pci_bus_id)
    driver = inventory.driver()
    print(f"  {driver}")
    assert driver.driver_version and re.fullmatch(r"\d+\.\d+(\.\d+)?", driver.driver_version)
    assert driver.cuda_version and re.fullmatch(r"\d+\.\d+", driver.cuda_version)


def test_list_gpus_latency(inventory: NvmlInventory) -> None:
    samples = list_gpus_seconds(inventory, runs=50)
    median = statistics.median(samples)
    print(f"\n  list_gpus() on real NVML, {len(inventory.list_gpus())} unit(s): "
          f"median {median * 1e3:.2f} ms, max {max(samples) * 1e3:.2f} ms")
    assert median < 0.5, "a claim and a status view each list the GPUs"


def test_sees_a_process_take_and_free_the_gpu(inventory: NvmlInventory) -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed: cannot load the GPU")
    gpu = whole_healthy_gpu(inventory)
    if gpu.processes:
        pytest.skip(f"{gpu.uuid} already runs {gpu.processes}; not loading a busy GPU")
    baseline = gpu.memory_used_bytes or 0

    env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu.uuid)
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(size=HOLD_BYTES)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "holding"
        busy = poll(inventory, gpu.uuid, child.pid, listed=True)
        seen = [g.processes for g in inventory.list_gpus() if g.uuid == gpu.uuid]
        assert busy is not None, (
            f"pid {child.pid} never appeared on {gpu.uuid} within {POLL_SECONDS:.0f} s; "
            f"NVML saw {seen} (a PID namespace would explain other PIDs)")
        [mine] = [p for p in busy.processes if p.pid == child.pid]
        print(f"\n  busy: {mine}, memory used {busy.memory_used_bytes} (baseline {baseline})")
        assert mine.used_memory_bytes is None or mine.used_memory_bytes >= HOLD_BYTES
        assert (busy.memory_used_bytes or 0) >= baseline + HOLD_BYTES
    finally:
        if child.stdin:
            child.stdin.close()
        child.wait(timeout=60)
    free = poll(inventory, gpu.uuid, child.pid, listed=False)
    assert free is not None, f"pid {child.pid} still listed {POLL_SECONDS:.0f} s after it exited"
    print(f"  free again: processes {free.processes}, memory used {free.memory_used_bytes}")
    assert (free.memory_used_bytes or 0) < baseline + HOLD_BYTES


def test_xid_events_on_the_real_driver(inventory: NvmlInventory) -> None:
    """Registration for critical XIDs and an idle poll, as ``list_gpus`` does them."""
    import pynvml

    from bot.adapters.nvml_xid import XidWatch

    watch = XidWatch(pynvml)
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        watch.register(pynvml.nvmlDeviceGetUUID(handle), handle)
    took = []
    for _ in range(20):
        start = time.perf_counter()
        watch.poll()
        took.append(time.perf_counter() - start)
    print(f"\n  XID events registered for {sorted(watch.registered) or 'no GPU'}; idle poll "
          f"median {statistics.median(took) * 1e3:.3f} ms, max {max(took) * 1e3:.3f} ms")
    assert all(watch.reason(uuid) is None for uuid in watch.registered)
    assert max(took) < 0.5  # a 0 ms wait never blocks a listing
    watch.close()
