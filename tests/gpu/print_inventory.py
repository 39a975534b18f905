"""Print what NvmlInventory sees on this machine, and what the raw NVML calls it relies
on answer (to check the adapter's assumptions against a real driver).

    python3 tests/gpu/print_inventory.py
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bot.adapters.nvml import NvmlInventory


def raw(label: str, call: Any) -> None:
    try:
        print(f"  {label}: {call()}")
    except Exception as exc:  # noqa: BLE001 - a diagnostic prints every outcome
        print(f"  {label}: {type(exc).__name__}: {exc}")


def main() -> None:
    from importlib.metadata import version

    import pynvml as n

    print(f"nvidia-ml-py {version('nvidia-ml-py')}")
    start = time.perf_counter()
    with NvmlInventory(socket.gethostname()) as inventory:
        print(f"NvmlInventory() took {(time.perf_counter() - start) * 1e3:.1f} ms")
        print(inventory.driver())
        for gpu in inventory.list_gpus():
            print(gpu)
        h = n.nvmlDeviceGetHandleByIndex(0)
        print("raw NVML answers for GPU 0:")
        raw("memory v2", lambda: n.nvmlDeviceGetMemoryInfo(h, version=n.nvmlMemory_v2))
        raw("memory v1", lambda: n.nvmlDeviceGetMemoryInfo(h))
        raw("temperature V", lambda: n.nvmlDeviceGetTemperatureV(h, n.NVML_TEMPERATURE_GPU))
        raw("temperature", lambda: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU))
        raw("processes v3", lambda: [str(p) for p in n.nvmlDeviceGetComputeRunningProcesses_v3(h)])
        raw("processes v2", lambda: [str(p) for p in n.nvmlDeviceGetComputeRunningProcesses_v2(h)])
        raw("uncorrected volatile ECC", lambda: n.nvmlDeviceGetTotalEccErrors(
            h, n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, n.NVML_VOLATILE_ECC))
        raw("remapped rows (corr, unc, pending, failed)", lambda: n.nvmlDeviceGetRemappedRows(h))
        raw("MIG mode (current, pending)", lambda: n.nvmlDeviceGetMigMode(h))
        raw("max MIG devices", lambda: n.nvmlDeviceGetMaxMigDeviceCount(h))
        raw("CUDA driver version v2", n.nvmlSystemGetCudaDriverVersion_v2)


if __name__ == "__main__":
    main()
