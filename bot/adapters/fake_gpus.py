"""``SyntheticInventory``: N made-up GPUs for hosts without NVIDIA GPUs
(``GPUBOT_FAKE_GPUS=N``) and for tests. Containers then get no GPU device request."""

from __future__ import annotations

import hashlib
import logging

from bot.domain.gpus import DriverInfo, GpuInfo

log = logging.getLogger(__name__)

GIB = 1024**3


def synthetic_uuid(host: str, index: int) -> str:
    """A UUID shaped like NVML's (``GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``), the same
    for the same host and index on every start, so leases survive a restart."""
    digest = hashlib.sha256(f"gpubot-synthetic:{host}:{index}".encode()).hexdigest()
    return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


class SyntheticInventory:
    """Always healthy, always idle GPUs. Loud on purpose: nobody should mistake them
    for real ones."""

    def __init__(self, count: int, host: str, model: str = "Synthetic GPU",
                 memory_total_bytes: int = 80 * GIB) -> None:
        if count < 1:
            raise ValueError(f"a synthetic inventory needs at least one GPU, got {count}")
        self.host = host
        self._gpus = tuple(
            GpuInfo(uuid=synthetic_uuid(host, i), index=i, name=model, host=host,
                    memory_total_bytes=memory_total_bytes, memory_used_bytes=0,
                    utilization_percent=0)
            for i in range(count)
        )
        log.warning("GPUBOT_FAKE_GPUS=%d: using %d SYNTHETIC GPUs on %s, not NVML; containers "
                    "get no GPU. Unset GPUBOT_FAKE_GPUS on a real GPU server.", count, count, host)

    def list_gpus(self) -> list[GpuInfo]:
        return list(self._gpus)

    def driver(self) -> DriverInfo:
        return DriverInfo(driver_version=None, cuda_version=None)

    def close(self) -> None:
        """Nothing to release; here so callers can treat inventories alike."""
