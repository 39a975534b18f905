"""A scripted stand-in for ``libnvidia-ml.so.1``, placed *under* the real pynvml module.

Only the C library is replaced: the real nvidia-ml-py wrappers still run (their struct
layouts, the two-call process-list protocol, ``NVMLError_*`` classes, FunctionNotFound
for a symbol the library lacks, None for NVML_VALUE_NOT_AVAILABLE). Each fake C function
fills its ctypes out-arguments the way the driver does and returns an NVML status code.

Script a host with ``FakeGpu``/``FakeMig`` values, then ``with installed(FakeNvmlLib(...)):``.
Failure scripting:
- ``FakeNvmlLib(missing={"nvmlDeviceGetMemoryInfo_v2"})``: the driver predates a symbol;
- ``FakeNvmlLib(init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)``: nvmlInit fails;
- ``installed(None)``: no libnvidia-ml.so.1 at all (LibraryNotFound);
- ``FakeGpu(errors={"nvmlDeviceGetTemperature": NVML_ERROR_NOT_SUPPORTED})``: one call
  on that GPU fails; key ``"*"`` fails every call on it (a lost GPU);
- ``FakeNvmlLib(record_size={"nvmlDeviceGetComputeRunningProcesses_v3": 32})``: the
  driver writes process records of another size than pynvml's struct (the garbage bug);
- ``lib.xid(index, 79)``: the driver reports an XID on that GPU; it is queued for the
  event set only if the GPU was registered for XID events, as NVML does.
"""

from __future__ import annotations

import ctypes
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pynvml

GiB = 1024**3
NA = 0xFFFFFFFF  # gpuInstanceId / computeInstanceId of a process outside MIG
OK: int = pynvml.NVML_SUCCESS
NOT_SUPPORTED: int = pynvml.NVML_ERROR_NOT_SUPPORTED
NOT_FOUND: int = pynvml.NVML_ERROR_NOT_FOUND
INVALID_ARGUMENT: int = pynvml.NVML_ERROR_INVALID_ARGUMENT
INSUFFICIENT_SIZE: int = pynvml.NVML_ERROR_INSUFFICIENT_SIZE
VERSION_MISMATCH: int = pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH


@dataclass
class FakeProcess:
    pid: int
    used: int | None  # None: the driver reports NVML_VALUE_NOT_AVAILABLE
    gpu_instance_id: int = NA
    compute_instance_id: int = NA


@dataclass
class FakeMig:
    uuid: str
    slot: int  # index for nvmlDeviceGetMigDeviceHandleByIndex
    name: str = "NVIDIA H100 80GB HBM3 MIG 1g.10gb"
    memory_total: int = 10 * GiB
    memory_used: int = 0
    gpu_instance_id: int = 1
    compute_instance_id: int = 0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    pci_bus_id: str = "00000000:17:00.0"
    memory_total: int = 80 * GiB
    memory_used: int = 0
    memory_reserved: int = 512 * 1024**2  # v1 counts this as used, v2 apart
    utilization: int = 0
    temperature: int = 35
    processes: list[FakeProcess] = field(default_factory=list)
    ecc_uncorrected_volatile: int = 0
    remapped_rows: tuple[int, int, int, int] = (0, 0, 0, 0)  # corr, unc, pending, failure
    mig_capable: bool = True
    mig_enabled: bool = False
    migs: list[FakeMig] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


class _Fn:
    """One fake C symbol: counts calls, applies scripted errors; pynvml may set
    attributes such as ``restype`` on it, as on a ctypes function."""

    def __init__(self, lib: FakeNvmlLib, name: str, impl: Callable[..., int]) -> None:
        self.lib, self.name, self.impl = lib, name, impl

    def __call__(self, *args: Any) -> Any:
        self.lib.calls[self.name] += 1
        target = self.lib.target(args[0]) if args and isinstance(args[0], pynvml.c_nvmlDevice_t) else None
        if target is not None:
            code = target.errors.get(self.name, target.errors.get("*"))
            if code is not None:
                return code
        return self.impl(self.lib, *args)


def _out(ref: Any) -> Any:
    """The ctypes object behind a ``byref(...)`` argument."""
    return ref._obj


def _set_handle(ref: Any, address: int) -> None:
    ctypes.memmove(ctypes.addressof(_out(ref)), ctypes.byref(ctypes.c_void_p(address)),
                   ctypes.sizeof(ctypes.c_void_p))


class FakeNvmlLib:
    def __init__(self, gpus: Iterable[FakeGpu], *, driver_version: str = "550.54.15",
                 cuda_version: int | None = 12040, missing: Iterable[str] = (),
                 init_error: int | None = None, record_size: dict[str, int] | None = None,
                 handle_errors: dict[int, int] | None = None) -> None:
        self.gpus = list(gpus)
        self.driver_version = driver_version
        self.cuda_version = cuda_version
        self.missing = set(missing)
        self.init_error = init_error
        self.record_size = record_size or {}
        self.handle_errors = handle_errors or {}  # GPU index -> code of GetHandleByIndex
        self.calls: Counter[str] = Counter()  # calls that reached the library
        self.lookups: Counter[str] = Counter()  # symbol look-ups (pynvml caches found ones)
        self.registered: dict[int, int] = {}  # GPU index -> event mask registered
        self.events: list[tuple[int, int]] = []  # (GPU index, XID) queued for the set

    def xid(self, index: int, code: int) -> None:
        if self.registered.get(index, 0) & pynvml.nvmlEventTypeXidCriticalError:
            self.events.append((index, code))

    def __getattr__(self, name: str) -> _Fn:
        self.lookups[name] += 1
        impl = type(self).__dict__.get("_" + name)
        if name.startswith("_") or name in self.missing or impl is None:
            raise AttributeError(name)  # pynvml turns this into NVMLError_FunctionNotFound
        return _Fn(self, name, impl)

    # handles: (GPU index + 1) << 8 | (MIG slot + 1)
    def target(self, handle: Any) -> FakeGpu | FakeMig | None:
        address = ctypes.cast(handle, ctypes.c_void_p).value or 0
        gpu = self.gpus[(address >> 8) - 1]
        if address & 0xFF:
            return next(m for m in gpu.migs if m.slot == (address & 0xFF) - 1)
        return gpu

    # ------------------------------------------------------------ system calls
    def _nvmlInitWithFlags(self, flags: Any) -> int:
        return self.init_error if self.init_error is not None else OK

    def _nvmlShutdown(self) -> int:
        return OK

    def _nvmlErrorString(self, code: Any) -> bytes:
        return b"fake NVML error %d" % int(code)

    def _nvmlSystemGetDriverVersion(self, buf: Any, size: Any) -> int:
        buf.value = self.driver_version.encode()
        return OK

    def _nvmlSystemGetCudaDriverVersion_v2(self, ref: Any) -> int:
        if self.cuda_version is None:
            return NOT_SUPPORTED
        _out(ref).value = self.cuda_version
        return OK

    _nvmlSystemGetCudaDriverVersion = _nvmlSystemGetCudaDriverVersion_v2

    def _nvmlDeviceGetCount_v2(self, ref: Any) -> int:
        _out(ref).value = len(self.gpus)
        return OK

    def _nvmlDeviceGetHandleByIndex_v2(self, index: Any, ref: Any) -> int:
        i = index.value
        if i >= len(self.gpus):
            return INVALID_ARGUMENT
        if i in self.handle_errors:
            return self.handle_errors[i]
        _set_handle(ref, (i + 1) << 8)
        return OK

    # ------------------------------------------------------------------ events
    def _nvmlEventSetCreate(self, ref: Any) -> int:
        _set_handle(ref, 0xE7E7)
        return OK

    def _nvmlEventSetFree(self, event_set: Any) -> int:
        return OK

    def _nvmlDeviceRegisterEvents(self, h: Any, types: Any, event_set: Any) -> int:
        if isinstance(self.target(h), FakeMig):
            return NOT_SUPPORTED
        index = ((ctypes.cast(h, ctypes.c_void_p).value or 0) >> 8) - 1
        self.registered[index] = self.registered.get(index, 0) | types.value
        return OK

    def _nvmlEventSetWait_v2(self, event_set: Any, ref: Any, timeout_ms: Any) -> int:
        if not self.events:
            return pynvml.NVML_ERROR_TIMEOUT
        index, code = self.events.pop(0)
        data = _out(ref)
        data.device = ctypes.cast(ctypes.c_void_p((index + 1) << 8), pynvml.c_nvmlDevice_t)
        data.eventType = pynvml.nvmlEventTypeXidCriticalError
        data.eventData = code
        data.gpuInstanceId = data.computeInstanceId = NA
        return OK

    # ------------------------------------------------------------ device calls
    def _nvmlDeviceGetUUID(self, h: Any, buf: Any, size: Any) -> int:
        buf.value = self.target(h).uuid.encode()  # type: ignore[union-attr]
        return OK

    def _nvmlDeviceGetName(self, h: Any, buf: Any, size: Any) -> int:
        buf.value = self.target(h).name.encode()  # type: ignore[union-attr]
        return OK

    def _nvmlDeviceGetPciInfo_v3(self, h: Any, ref: Any) -> int:
        _out(ref).busId = self.target(h).pci_bus_id.encode()  # type: ignore[union-attr]
        return OK

    def _nvmlDeviceGetMemoryInfo(self, h: Any, ref: Any) -> int:
        t = self.target(h)
        reserved = getattr(t, "memory_reserved", 0)
        m = _out(ref)
        m.total, m.used = t.memory_total, t.memory_used + reserved  # type: ignore[union-attr]
        m.free = m.total - m.used
        return OK

    def _nvmlDeviceGetMemoryInfo_v2(self, h: Any, ref: Any) -> int:
        t, m = self.target(h), _out(ref)
        if m.version != pynvml.nvmlMemory_v2:
            return VERSION_MISMATCH
        m.total, m.used = t.memory_total, t.memory_used  # type: ignore[union-attr]
        m.reserved = getattr(t, "memory_reserved", 0)
        m.free = m.total - m.used - m.reserved
        return OK

    def _nvmlDeviceGetUtilizationRates(self, h: Any, ref: Any) -> int:
        t = self.target(h)
        if isinstance(t, FakeMig) or t.mig_enabled:  # type: ignore[union-attr]
            return NOT_SUPPORTED
        _out(ref).gpu = _out(ref).memory = t.utilization  # type: ignore[union-attr]
        return OK

    def _nvmlDeviceGetTemperatureV(self, h: Any, ref: Any) -> int:
        if _out(ref).version != pynvml.nvmlTemperature_v1:
            return VERSION_MISMATCH
        _out(ref).temperature = self.target(h).temperature  # type: ignore[union-attr]
        return OK

    def _nvmlDeviceGetTemperature(self, h: Any, sensor: Any, ref: Any) -> int:
        _out(ref).value = self.target(h).temperature  # type: ignore[union-attr]
        return OK

    def _processes(self, name: str, h: Any, count_ref: Any, array: Any) -> int:
        procs = self.target(h).processes  # type: ignore[union-attr]
        count = _out(count_ref)
        if array is None:
            count.value = len(procs)
            return INSUFFICIENT_SIZE if procs else OK
        if count.value < len(procs):
            return INSUFFICIENT_SIZE
        size = self.record_size.get(name, ctypes.sizeof(pynvml.c_nvmlProcessInfo_v2_t))
        for i, p in enumerate(procs):  # the driver's layout: pid, used, gi, ci[, extra u64]
            used = 0xFFFFFFFFFFFFFFFF if p.used is None else p.used
            record = struct.pack("<IIQII", p.pid, 0, used, p.gpu_instance_id,
                                 p.compute_instance_id).ljust(size, b"\0")
            ctypes.memmove(ctypes.addressof(array) + i * size, record, size)
        count.value = len(procs)
        return OK

    def _nvmlDeviceGetComputeRunningProcesses_v3(self, h: Any, c: Any, a: Any) -> int:
        return self._processes("nvmlDeviceGetComputeRunningProcesses_v3", h, c, a)

    def _nvmlDeviceGetComputeRunningProcesses_v2(self, h: Any, c: Any, a: Any) -> int:
        return self._processes("nvmlDeviceGetComputeRunningProcesses_v2", h, c, a)

    def _nvmlDeviceGetTotalEccErrors(self, h: Any, kind: Any, counter: Any, ref: Any) -> int:
        t = self.target(h)
        if isinstance(t, FakeMig):
            return NOT_SUPPORTED
        wanted = (kind.value, counter.value) == (
            pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC)
        _out(ref).value = t.ecc_uncorrected_volatile if wanted else 0  # type: ignore[union-attr]
        return OK

    def _nvmlDeviceGetRemappedRows(self, h: Any, *refs: Any) -> int:
        t = self.target(h)
        if isinstance(t, FakeMig):
            return NOT_SUPPORTED
        for ref, value in zip(refs, t.remapped_rows):  # type: ignore[union-attr]
            _out(ref).value = value
        return OK

    def _nvmlDeviceGetMigMode(self, h: Any, current: Any, pending: Any) -> int:
        t = self.target(h)
        if isinstance(t, FakeMig) or not t.mig_capable:  # type: ignore[union-attr]
            return NOT_SUPPORTED
        _out(current).value = _out(pending).value = int(t.mig_enabled)  # type: ignore[union-attr]
        return OK

    def _nvmlDeviceGetMaxMigDeviceCount(self, h: Any, ref: Any) -> int:
        t = self.target(h)
        _out(ref).value = 7 if getattr(t, "mig_enabled", False) else 0
        return OK

    def _nvmlDeviceGetMigDeviceHandleByIndex(self, h: Any, index: Any, ref: Any) -> int:
        address = ctypes.cast(h, ctypes.c_void_p).value or 0
        gpu = self.target(h)
        if not any(m.slot == index.value for m in gpu.migs):  # type: ignore[union-attr]
            return NOT_FOUND
        _set_handle(ref, address | (index.value + 1))
        return OK

    def _nvmlDeviceGetGpuInstanceId(self, h: Any, ref: Any) -> int:
        t = self.target(h)
        if not isinstance(t, FakeMig):
            return INVALID_ARGUMENT
        _out(ref).value = t.gpu_instance_id
        return OK

    def _nvmlDeviceGetComputeInstanceId(self, h: Any, ref: Any) -> int:
        t = self.target(h)
        if not isinstance(t, FakeMig):
            return INVALID_ARGUMENT
        _out(ref).value = t.compute_instance_id
        return OK


def _no_library(*_: Any, **__: Any) -> Any:
    raise OSError("libnvidia-ml.so.1: cannot open shared object file: No such file or directory")


@contextmanager
def installed(lib: FakeNvmlLib | None) -> Iterator[FakeNvmlLib | None]:
    """Make pynvml use ``lib`` as its loaded NVML library (None: the library is
    missing), restoring pynvml's own state afterwards."""
    saved = (pynvml.nvmlLib, pynvml._nvmlGetFunctionPointer_cache,
             pynvml._nvmlLib_refcount, pynvml.CDLL)
    pynvml.nvmlLib = lib
    pynvml._nvmlGetFunctionPointer_cache = {}
    pynvml._nvmlLib_refcount = 0
    if lib is None:
        pynvml.CDLL = _no_library
    try:
        yield lib
    finally:
        (pynvml.nvmlLib, pynvml._nvmlGetFunctionPointer_cache,
         pynvml._nvmlLib_refcount, pynvml.CDLL) = saved
