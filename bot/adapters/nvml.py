"""``GpuInventory`` over NVML (nvidia-ml-py). The only module that imports ``pynvml``.

One ``nvmlInit`` per inventory, ``nvmlShutdown`` in ``close()``. Static facts of a GPU
(handle, UUID, name, PCI bus id) are read once; everything else is read live on each
``list_gpus()``. Versioned NVML calls fall back to older ones the first time the driver
lacks them (``FunctionNotFound``) and the choice is remembered, so a list costs only
the calls that work. A field the GPU does not support is ``None``; a lost GPU is listed
with ``healthy=False`` and a reason, never raised; so is one that reported a critical XID
(nvml_xid.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from bot.adapters.nvml_xid import XidWatch
from bot.domain.errors import GpuBackendUnavailable
from bot.domain.gpus import DriverInfo, GpuInfo, GpuProcess

log = logging.getLogger(__name__)
T = TypeVar("T")

_PID_LIMIT = 1 << 22  # Linux never hands out a PID at or above this (pid_max <= 2**22)
# (process, GPU instance id, compute instance id): the ids match a MIG unit's own
_RawProc = tuple[GpuProcess, int, int]


@dataclass(frozen=True)
class _Static:
    handle: Any
    uuid: str
    name: str
    pci_bus_id: str | None


def _unavailable(reason: str) -> GpuBackendUnavailable:
    return GpuBackendUnavailable(
        f"Cannot read the GPUs: {reason}; fix the NVIDIA driver or set GPUBOT_FAKE_GPUS=N "
        "to run with N synthetic GPUs, and run `gpubot doctor` to check the setup."
    )


class NvmlInventory:
    """Every leasable unit of this host: whole GPUs, or the MIG instances of a GPU in
    MIG mode (the parent itself is then not leasable)."""

    def __init__(self, host: str) -> None:
        try:
            import pynvml
        except ImportError as exc:
            raise _unavailable("the nvidia-ml-py package is not installed") from exc
        self._nvml: Any = pynvml
        self.host = host
        n = pynvml
        try:
            n.nvmlInit()
        except n.NVMLError as exc:
            reasons = {
                n.NVML_ERROR_LIBRARY_NOT_FOUND: "the NVML library (libnvidia-ml.so.1) is "
                "not installed, so no NVIDIA driver is present",
                n.NVML_ERROR_DRIVER_NOT_LOADED: "the NVIDIA kernel driver is not loaded",
                n.NVML_ERROR_LIB_RM_VERSION_MISMATCH: "the NVIDIA driver was upgraded but "
                "the old kernel module is still loaded (reboot the host)",
                n.NVML_ERROR_NO_PERMISSION: "no permission to open the NVIDIA devices",
            }
            raise _unavailable(reasons.get(exc.value, f"NVML failed to start ({exc})")) from exc
        self._lock = threading.Lock()
        self._closed = False
        self._static: dict[int, _Static] = {}
        self._skip: dict[str, int] = {}  # call family -> first variant the driver has
        self._proc_calls = [
            "nvmlDeviceGetComputeRunningProcesses_v3",
            "nvmlDeviceGetComputeRunningProcesses_v2",
        ]
        self._driver: DriverInfo | None = None
        self._warned: set[str] = set()
        self._xids = XidWatch(n)
        # Errors that mean the whole GPU is gone or wedged, not just one field.
        self._fatal = {n.NVML_ERROR_GPU_IS_LOST, n.NVML_ERROR_RESET_REQUIRED}
        self._missing = {n.NVML_ERROR_FUNCTION_NOT_FOUND,
                         getattr(n, "NVML_ERROR_ARGUMENT_VERSION_MISMATCH", 25)}

    # ------------------------------------------------------------------ public
    def list_gpus(self) -> list[GpuInfo]:
        n = self._nvml
        with self._lock:
            if self._closed:
                raise GpuBackendUnavailable("The GPU inventory is closed.")
            try:
                count = n.nvmlDeviceGetCount()
            except n.NVMLError as exc:
                raise _unavailable(f"NVML cannot count the GPUs ({exc})") from exc
            self._xids.poll()
            units: list[GpuInfo] = []
            for index in range(count):
                units.extend(self._units(index))
            return units

    def driver(self) -> DriverInfo:
        n = self._nvml
        with self._lock:
            if self._driver is None:
                version = self._opt(n.nvmlSystemGetDriverVersion)
                cuda = self._opt(lambda: self._first("cuda", [
                    lambda: n.nvmlSystemGetCudaDriverVersion_v2(),
                    lambda: n.nvmlSystemGetCudaDriverVersion()]))
                cuda_text = f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else None
                self._driver = DriverInfo(driver_version=version, cuda_version=cuda_text)
            return self._driver

    def close(self) -> None:
        """Shut NVML down once; later calls to ``close`` do nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._xids.close()
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError as exc:
                log.warning("nvmlShutdown failed: %s", exc)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ----------------------------------------------------------------- helpers
    def _opt(self, call: Callable[..., T], *args: Any) -> T | None:
        """``call(*args)``, or None when the field is unsupported or unreadable. Errors
        that mean the GPU itself is lost propagate to ``_units``."""
        try:
            return call(*args)
        except self._nvml.NVMLError as exc:
            if exc.value in self._fatal:
                raise
            return None

    def _first(self, family: str, variants: list[Callable[[], T]]) -> T:
        """The first variant the driver implements; variants it lacks are skipped from
        then on."""
        for i in range(self._skip.get(family, 0), len(variants)):
            last = i == len(variants) - 1
            try:
                return variants[i]()
            except self._nvml.NVMLError as exc:
                if exc.value not in self._missing or last:
                    raise
            except (AttributeError, TypeError):  # this nvidia-ml-py predates the variant
                if last:
                    raise
            self._skip[family] = i + 1
        raise AssertionError("unreachable: variants must not be empty")

    def _static_of(self, index: int) -> _Static:
        if index not in self._static:
            n = self._nvml
            handle = n.nvmlDeviceGetHandleByIndex(index)
            pci = self._opt(lambda: n.nvmlDeviceGetPciInfo(handle).busId)
            self._static[index] = _Static(
                handle=handle,
                uuid=n.nvmlDeviceGetUUID(handle),
                name=n.nvmlDeviceGetName(handle),
                pci_bus_id=pci.decode() if isinstance(pci, bytes) else pci,
            )
            self._xids.register(self._static[index].uuid, handle)
        return self._static[index]

    def _units(self, index: int) -> list[GpuInfo]:
        n = self._nvml
        static = self._static.get(index)
        try:
            static = self._static_of(index)
            return self._read(index, static)
        except n.NVMLError as exc:
            reasons = {
                n.NVML_ERROR_GPU_IS_LOST: "GPU is lost (fell off the bus): reboot the host "
                "or reseat the card",
                n.NVML_ERROR_RESET_REQUIRED: "GPU needs a reset (nvidia-smi -r)",
            }
            reason = reasons.get(exc.value, f"NVML cannot read this GPU ({exc})")
            log.error("GPU %d on %s is unusable: %s", index, self.host, reason)
            return [GpuInfo(
                uuid=static.uuid if static else f"unknown-gpu-{index}",
                index=index,
                name=static.name if static else "unknown GPU",
                host=self.host,
                pci_bus_id=static.pci_bus_id if static else None,
                healthy=False,
                health_reason=reason,
            )]

    def _read(self, index: int, st: _Static) -> list[GpuInfo]:
        n, h = self._nvml, st.handle
        health = self._health(h, st.uuid)
        temperature = self._opt(lambda: self._first("temperature", [
            lambda: n.nvmlDeviceGetTemperatureV(h, n.NVML_TEMPERATURE_GPU),
            lambda: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU)]))
        mig = self._opt(lambda: n.nvmlDeviceGetMigMode(h)[0])
        common: dict[str, Any] = {
            "host": self.host, "temperature_c": temperature, "pci_bus_id": st.pci_bus_id,
            "healthy": health is None, "health_reason": health}
        if mig == n.NVML_DEVICE_MIG_ENABLE:
            return self._mig_units(index, st, common)
        total, used = self._memory(h)
        procs = self._processes(h, total, st.uuid)
        return [GpuInfo(
            uuid=st.uuid, index=index, name=st.name, memory_total_bytes=total,
            memory_used_bytes=used,
            utilization_percent=self._opt(lambda: int(n.nvmlDeviceGetUtilizationRates(h).gpu)),
            processes=tuple(p for p, _, _ in procs or ()), processes_known=procs is not None,
            **common)]

    def _mig_units(self, index: int, st: _Static, common: dict[str, Any]) -> list[GpuInfo]:
        """The MIG instances of a GPU in MIG mode. Processes come from the parent's list,
        matched by GPU/compute instance id."""
        n = self._nvml
        procs = self._processes(st.handle, None, st.uuid)
        units: list[GpuInfo] = []
        for slot in range(self._opt(n.nvmlDeviceGetMaxMigDeviceCount, st.handle) or 0):
            mh = self._opt(n.nvmlDeviceGetMigDeviceHandleByIndex, st.handle, slot)
            if mh is None:  # NotFound: no instance in this slot
                continue
            ids = (self._opt(n.nvmlDeviceGetGpuInstanceId, mh),
                   self._opt(n.nvmlDeviceGetComputeInstanceId, mh))
            total, used = self._memory(mh)
            mine = tuple(p for p, gi, ci in procs or () if (gi, ci) == ids)
            units.append(GpuInfo(
                uuid=n.nvmlDeviceGetUUID(mh), index=index, name=n.nvmlDeviceGetName(mh),
                memory_total_bytes=total, memory_used_bytes=used, processes=mine,
                processes_known=procs is not None, parent_uuid=st.uuid, **common))
        return units

    def _memory(self, h: Any) -> tuple[int | None, int | None]:
        n = self._nvml
        mem = self._opt(lambda: self._first("memory", [
            lambda: n.nvmlDeviceGetMemoryInfo(h, version=n.nvmlMemory_v2),
            lambda: n.nvmlDeviceGetMemoryInfo(h)]))
        return (int(mem.total), int(mem.used)) if mem is not None else (None, None)

    def _health(self, h: Any, uuid: str) -> str | None:
        n = self._nvml
        reasons = [r for r in [self._xids.reason(uuid)] if r]
        ecc = self._opt(lambda: n.nvmlDeviceGetTotalEccErrors(
            h, n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, n.NVML_VOLATILE_ECC))
        if ecc:
            reasons.append(f"{ecc} uncorrected ECC error(s) since the driver loaded")
        rows = self._opt(lambda: n.nvmlDeviceGetRemappedRows(h))
        if rows and rows[3]:
            reasons.append("memory row remapping failed: the GPU needs service")
        elif rows and rows[2]:
            reasons.append("memory row remapping pending: reset the GPU (nvidia-smi -r)")
        return "; ".join(reasons) or None

    def _processes(self, h: Any, total: int | None, uuid: str) -> list[_RawProc] | None:
        """Compute processes, or None when unknown. Tries the newest call first; a call
        the driver lacks, or one whose records decode as garbage (pynvml's struct not
        matching the driver's), is dropped for the rest of the session."""
        n = self._nvml
        for name in list(self._proc_calls):
            call = getattr(n, name, None)  # older nvidia-ml-py lacks the _v3 wrapper
            if call is None:
                self._proc_calls.remove(name)
                continue
            try:
                raw = call(h)
            except n.NVMLError as exc:
                if exc.value in self._fatal:
                    raise
                if exc.value in self._missing:
                    self._proc_calls.remove(name)
                    continue
                self._unknown(uuid, f"{name} failed ({exc})")
                return None
            decoded = _decode(raw, total)
            if decoded is not None:
                return decoded
            log.warning("%s returned garbage (driver/pynvml struct mismatch); not using it",
                        name)
            self._proc_calls.remove(name)
        self._unknown(uuid, "no process-list call of this driver gives sane data")
        return None

    def _unknown(self, uuid: str, why: str) -> None:
        """Say once per GPU that its processes are unknown (GpuInfo.processes_known is
        then False, and its used memory alone shows it busy)."""
        if uuid not in self._warned:
            self._warned.add(uuid)
            log.warning("processes on %s are unknown: %s", uuid, why)


def _decode(raw: list[Any], total: int | None) -> list[_RawProc] | None:
    out: list[_RawProc] = []
    for p in raw:
        pid, used = int(p.pid), p.usedGpuMemory
        if not 0 < pid < _PID_LIMIT or (used is not None and total is not None and used > total):
            return None
        out.append((GpuProcess(pid=pid, used_memory_bytes=None if used is None else int(used)),
                    int(p.gpuInstanceId), int(p.computeInstanceId)))
    return out
