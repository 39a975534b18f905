"""An in-memory GpuInventory whose GPUs tests can change (busy, unhealthy, gone)."""

from __future__ import annotations

from dataclasses import replace

from bot.domain.gpus import DriverInfo, GpuInfo, GpuProcess


class FakeInventory:
    def __init__(self, count: int = 4, *, host: str = "gpu-host-1", name: str = "NVIDIA H100 80GB HBM3") -> None:
        self.gpus: list[GpuInfo] = [
            GpuInfo(uuid=f"GPU-00000000-0000-4000-8000-{i:012d}", index=i, name=name, host=host,
                    memory_total_bytes=80 * 1024**3, memory_used_bytes=0, utilization_percent=0)
            for i in range(count)
        ]

    def list_gpus(self) -> list[GpuInfo]:
        return list(self.gpus)

    def driver(self) -> DriverInfo:
        return DriverInfo(driver_version="550.54.15", cuda_version="12.4")

    def set(self, index: int, **changes: object) -> GpuInfo:
        self.gpus[index] = replace(self.gpus[index], **changes)  # type: ignore[arg-type]
        return self.gpus[index]

    def make_busy(self, index: int, pid: int = 4242) -> GpuInfo:
        return self.set(index, processes=(GpuProcess(pid=pid, used_memory_bytes=2 * 1024**3),),
                        memory_used_bytes=2 * 1024**3)
