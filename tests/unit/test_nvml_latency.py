"""How much one ``list_gpus()`` costs: NVML calls per GPU (deterministic) and wall time
over the scripted library (pynvml's own wrappers included)."""

from __future__ import annotations

import statistics

from bot.adapters.nvml import NvmlInventory
from tests.fakes.pynvml_standin import FakeGpu, FakeNvmlLib, FakeProcess, GiB, installed
from tests.support.timing import list_gpus_seconds

GPUS = 8


def eight_busy_gpus() -> FakeNvmlLib:
    return FakeNvmlLib([
        FakeGpu(f"GPU-00000000-0000-4000-8000-{i:012d}", pci_bus_id=f"00000000:{0x17 + i:02X}:00.0",
                processes=[FakeProcess(1000 + i, GiB), FakeProcess(2000 + i, 2 * GiB)])
        for i in range(GPUS)])


def test_steady_state_calls_per_gpu() -> None:
    lib = eight_busy_gpus()
    with installed(lib):
        inventory = NvmlInventory("h")
        inventory.list_gpus()  # first list reads the static facts
        lib.calls.clear()
        inventory.list_gpus()
    per_list = lib.calls["nvmlDeviceGetCount_v2"] + lib.calls["nvmlEventSetWait_v2"]
    per_gpu = (sum(lib.calls.values()) - per_list) / GPUS
    # ECC, remapped rows, temperature, MIG mode, memory, utilization, processes (2 calls)
    assert per_gpu == 8, dict(lib.calls)
    assert per_list == 2  # the count and one idle XID poll


def test_list_gpus_latency_on_the_standin() -> None:
    with installed(eight_busy_gpus()):
        samples = list_gpus_seconds(NvmlInventory("h"), runs=300)
    median = statistics.median(samples)
    p99 = sorted(samples)[int(len(samples) * 0.99)]
    print(f"\nlist_gpus() on the stand-in, {GPUS} busy GPUs: median {median * 1e3:.3f} ms, "
          f"p99 {p99 * 1e3:.3f} ms ({median / GPUS * 1e6:.0f} us per GPU)")
    assert median < 0.010  # generous: the Python side must never dominate a claim
