"""What the domain knows of a GPU: plain values filled in by the inventory adapters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuProcess:
    pid: int  # host PID
    used_memory_bytes: int | None  # None: the driver does not report it


@dataclass(frozen=True)
class GpuInfo:
    """One leasable unit: a whole GPU, or a MIG instance (uuid starts with ``MIG-``)."""

    uuid: str
    index: int
    name: str
    host: str
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    utilization_percent: int | None = None  # None: unknown / not supported
    temperature_c: int | None = None
    pci_bus_id: str | None = None
    processes: tuple[GpuProcess, ...] = ()
    processes_known: bool = True  # False: no process-list call of the driver worked
    healthy: bool = True
    health_reason: str | None = None  # why it is unhealthy, for people
    parent_uuid: str | None = None  # set for MIG instances


@dataclass(frozen=True)
class DriverInfo:
    driver_version: str | None
    cuda_version: str | None  # the driver's highest supported CUDA, e.g. "12.4"


def gpu_label(uuid: str, gpus: Mapping[str, GpuInfo]) -> str:
    """How people see a GPU: "GPU 2 (NVIDIA H100 80GB HBM3)", or its UUID when the
    inventory no longer lists it."""
    gpu = gpus.get(uuid)
    return f"GPU {gpu.index} ({gpu.name})" if gpu else uuid


def describe_gpus(uuids: Iterable[str], gpus: Iterable[GpuInfo]) -> str:
    by_uuid = {g.uuid: g for g in gpus}
    return ", ".join(gpu_label(u, by_uuid) for u in uuids) or "a GPU"
