"""Wall time of ``list_gpus()``, shared by the stand-in and the real-NVML latency tests."""

from __future__ import annotations

import time

from bot.ports import GpuInventory


def list_gpus_seconds(inventory: GpuInventory, runs: int) -> list[float]:
    """One untimed ``list_gpus()`` (the first reads the static facts), then ``runs``
    timed ones: their durations in seconds."""
    inventory.list_gpus()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        inventory.list_gpus()
        samples.append(time.perf_counter() - start)
    return samples
