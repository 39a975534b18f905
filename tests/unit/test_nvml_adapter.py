"""NvmlInventory over the real pynvml wrappers with a scripted libnvidia-ml underneath."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pynvml
import pytest

from bot.adapters.nvml import NvmlInventory
from bot.domain.errors import GpuBackendUnavailable
from bot.domain.gpus import GpuProcess
from tests.fakes.pynvml_standin import (
    FakeGpu,
    FakeMig,
    FakeNvmlLib,
    FakeProcess,
    GiB,
    installed,
)

UUID0 = "GPU-0a0a0a0a-0000-4000-8000-000000000000"
UUID1 = "GPU-1b1b1b1b-1111-4111-8111-111111111111"
MIG_A = "MIG-aaaaaaaa-aaaa-5aaa-8aaa-aaaaaaaaaaaa"
MIG_B = "MIG-bbbbbbbb-bbbb-5bbb-8bbb-bbbbbbbbbbbb"
V3 = "nvmlDeviceGetComputeRunningProcesses_v3"
V2 = "nvmlDeviceGetComputeRunningProcesses_v2"


def two_gpus(**first: object) -> list[FakeGpu]:
    return [FakeGpu(UUID0, **first),  # type: ignore[arg-type]
            FakeGpu(UUID1, pci_bus_id="00000000:18:00.0", temperature=51, utilization=87)]


@pytest.fixture
def host() -> Iterator[tuple[FakeNvmlLib, NvmlInventory]]:
    lib = FakeNvmlLib(two_gpus(processes=[FakeProcess(4242, 3 * GiB)], memory_used=3 * GiB))
    with installed(lib):
        inventory = NvmlInventory("gpu-host-1")
        yield lib, inventory
        inventory.close()


# ------------------------------------------------------------------- happy path
def test_lists_every_gpu_with_live_fields(host: tuple[FakeNvmlLib, NvmlInventory]) -> None:
    _, inventory = host
    first, second = inventory.list_gpus()
    assert (first.uuid, first.index, first.name, first.host) == (
        UUID0, 0, "NVIDIA H100 80GB HBM3", "gpu-host-1")
    assert first.pci_bus_id == "00000000:17:00.0"
    assert first.memory_total_bytes == 80 * GiB
    assert first.memory_used_bytes == 3 * GiB  # v2: the reserved 512 MiB are not "used"
    assert first.processes == (GpuProcess(pid=4242, used_memory_bytes=3 * GiB),)
    assert first.healthy and first.health_reason is None and first.parent_uuid is None
    assert (second.uuid, second.index, second.utilization_percent, second.temperature_c) == (
        UUID1, 1, 87, 51)
    assert second.processes == ()


def test_reads_static_facts_once_and_live_facts_every_time(
        host: tuple[FakeNvmlLib, NvmlInventory]) -> None:
    lib, inventory = host
    inventory.list_gpus()
    lib.gpus[0].processes = []
    lib.gpus[0].memory_used = 0
    gpu = inventory.list_gpus()[0]
    assert gpu.processes == () and gpu.memory_used_bytes == 0
    for static in ("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetUUID", "nvmlDeviceGetName",
                   "nvmlDeviceGetPciInfo_v3"):
        assert lib.calls[static] == 2, static  # once per GPU, not per list
    assert lib.calls["nvmlDeviceGetMemoryInfo_v2"] == 4


def test_driver_versions(host: tuple[FakeNvmlLib, NvmlInventory]) -> None:
    _, inventory = host
    info = inventory.driver()
    assert (info.driver_version, info.cuda_version) == ("550.54.15", "12.4")


@pytest.mark.parametrize(("raw", "text"), [(12000, "12.0"), (12020, "12.2"), (11080, "11.8"),
                                            (13010, "13.1")])
def test_cuda_version_is_major_dot_minor(raw: int, text: str) -> None:
    with installed(FakeNvmlLib(two_gpus(), driver_version="525.60.13", cuda_version=raw)):
        assert NvmlInventory("h").driver().cuda_version == text


def test_cuda_version_falls_back_to_the_old_call() -> None:
    lib = FakeNvmlLib(two_gpus(), missing={"nvmlSystemGetCudaDriverVersion_v2"}, cuda_version=11040)
    with installed(lib):
        assert NvmlInventory("h").driver().cuda_version == "11.4"
    assert lib.calls["nvmlSystemGetCudaDriverVersion"] == 1


def test_cuda_version_unknown_when_unsupported() -> None:
    with installed(FakeNvmlLib(two_gpus(), cuda_version=None)):
        assert NvmlInventory("h").driver().cuda_version is None


# -------------------------------------------------------------- lifecycle
def test_init_once_and_shutdown_once() -> None:
    lib = FakeNvmlLib(two_gpus())
    with installed(lib):
        with NvmlInventory("h") as inventory:
            inventory.list_gpus()
            inventory.list_gpus()
            inventory.driver()
        inventory.close()
        assert lib.calls["nvmlInitWithFlags"] == 1
        assert lib.calls["nvmlShutdown"] == 1
        with pytest.raises(GpuBackendUnavailable, match="closed"):
            inventory.list_gpus()


# ----------------------------------------------------------- backend missing
def assert_actionable(exc: GpuBackendUnavailable, *fragments: str) -> None:
    text = exc.message
    assert "GPUBOT_FAKE_GPUS" in text and "gpubot doctor" in text
    for fragment in fragments:
        assert fragment in text
    assert "\n" not in text


def test_library_missing() -> None:
    with installed(None), pytest.raises(GpuBackendUnavailable) as caught:
        NvmlInventory("h")
    assert_actionable(caught.value, "libnvidia-ml.so.1")
    assert isinstance(caught.value.__cause__, pynvml.NVMLError_LibraryNotFound)


@pytest.mark.parametrize(("code", "fragment"), [
    (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "kernel driver is not loaded"),
    (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, "reboot"),
    (pynvml.NVML_ERROR_NO_PERMISSION, "permission"),
    (pynvml.NVML_ERROR_UNKNOWN, "Unknown Error"),
])
def test_init_failures(code: int, fragment: str) -> None:
    with installed(FakeNvmlLib(two_gpus(), init_error=code)), \
            pytest.raises(GpuBackendUnavailable) as caught:
        NvmlInventory("h")
    assert_actionable(caught.value, fragment)


def test_pynvml_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    with pytest.raises(GpuBackendUnavailable) as caught:
        NvmlInventory("h")
    assert_actionable(caught.value, "nvidia-ml-py")


def test_count_failure_is_backend_unavailable(host: tuple[FakeNvmlLib, NvmlInventory]) -> None:
    lib, inventory = host
    lib.missing.add("nvmlDeviceGetCount_v2")
    pynvml._nvmlGetFunctionPointer_cache.clear()
    with pytest.raises(GpuBackendUnavailable):
        inventory.list_gpus()


# -------------------------------------------------------------- lost GPUs
def test_gpu_lost_while_running_keeps_its_identity(host: tuple[FakeNvmlLib, NvmlInventory]) -> None:
    lib, inventory = host
    inventory.list_gpus()
    lib.gpus[1].errors["*"] = pynvml.NVML_ERROR_GPU_IS_LOST
    first, lost = inventory.list_gpus()
    assert first.healthy
    assert (lost.uuid, lost.index, lost.pci_bus_id) == (UUID1, 1, "00000000:18:00.0")
    assert not lost.healthy and "lost" in (lost.health_reason or "")
    assert lost.memory_total_bytes is None and lost.processes == ()


def test_gpu_lost_before_start_is_listed_unhealthy() -> None:
    lib = FakeNvmlLib(two_gpus(), handle_errors={1: pynvml.NVML_ERROR_GPU_IS_LOST})
    with installed(lib):
        gpus = NvmlInventory("h").list_gpus()
    assert [g.healthy for g in gpus] == [True, False]
    assert gpus[1].uuid == "unknown-gpu-1" and "lost" in (gpus[1].health_reason or "")


def test_unknown_error_on_handle_is_unhealthy_not_raised() -> None:
    lib = FakeNvmlLib(two_gpus(), handle_errors={0: pynvml.NVML_ERROR_UNKNOWN})
    with installed(lib):
        gpus = NvmlInventory("h").list_gpus()
    assert not gpus[0].healthy and "Unknown Error" in (gpus[0].health_reason or "")
    assert gpus[1].healthy


def test_reset_required_is_unhealthy(host: tuple[FakeNvmlLib, NvmlInventory]) -> None:
    lib, inventory = host
    lib.gpus[0].errors["nvmlDeviceGetComputeRunningProcesses_v3"] = pynvml.NVML_ERROR_RESET_REQUIRED
    gpu = inventory.list_gpus()[0]
    assert not gpu.healthy and "reset" in (gpu.health_reason or "")


# --------------------------------------------------------- unsupported fields
def test_not_supported_fields_are_none() -> None:
    ns = pynvml.NVML_ERROR_NOT_SUPPORTED
    errors = {name: ns for name in (
        "nvmlDeviceGetUtilizationRates", "nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature",
        "nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetPciInfo_v3",
        "nvmlDeviceGetTotalEccErrors", "nvmlDeviceGetRemappedRows", "nvmlDeviceGetMigMode")}
    with installed(FakeNvmlLib(two_gpus(errors=errors))):
        gpu = NvmlInventory("h").list_gpus()[0]
    assert gpu.uuid == UUID0 and gpu.healthy
    assert (gpu.utilization_percent, gpu.temperature_c, gpu.memory_total_bytes,
            gpu.memory_used_bytes, gpu.pci_bus_id) == (None, None, None, None, None)


def test_memory_falls_back_to_v1_once() -> None:
    lib = FakeNvmlLib(two_gpus(memory_used=GiB), missing={"nvmlDeviceGetMemoryInfo_v2"})
    with installed(lib):
        inventory = NvmlInventory("h")
        inventory.list_gpus()
        gpu = inventory.list_gpus()[0]
    assert gpu.memory_used_bytes == GiB + 512 * 1024**2  # v1 counts the reserved part
    assert lib.calls["nvmlDeviceGetMemoryInfo"] == 4
    assert lib.lookups["nvmlDeviceGetMemoryInfo_v2"] == 1  # missing: not asked for again


def test_temperature_falls_back_to_the_deprecated_call() -> None:
    lib = FakeNvmlLib(two_gpus(temperature=44), missing={"nvmlDeviceGetTemperatureV"})
    with installed(lib):
        assert NvmlInventory("h").list_gpus()[0].temperature_c == 44


# ------------------------------------------------------------ process lists
BUSY = [FakeProcess(4242, 3 * GiB), FakeProcess(777, GiB)]
EXPECTED = (GpuProcess(4242, 3 * GiB), GpuProcess(777, GiB))


def test_old_driver_without_v3_uses_v2() -> None:
    lib = FakeNvmlLib(two_gpus(processes=BUSY), missing={V3})
    with installed(lib):
        inventory = NvmlInventory("h")
        inventory.list_gpus()
        assert inventory.list_gpus()[0].processes == EXPECTED
    assert lib.calls[V2] == 6  # two calls (size, then fill) when busy, one when idle
    assert lib.lookups[V3] == 1


def test_garbage_records_are_detected_and_v2_used() -> None:
    # The driver's v3 records are 32 bytes; pynvml's struct is 24: pids decode as 0 / 2**32-1.
    lib = FakeNvmlLib(two_gpus(processes=BUSY), record_size={V3: 32})
    with installed(lib):
        inventory = NvmlInventory("h")
        raw = pynvml.nvmlDeviceGetComputeRunningProcesses_v3(pynvml.nvmlDeviceGetHandleByIndex(0))
        assert [p.pid for p in raw] == [4242, 0]  # the real bug, reproduced under pynvml
        assert inventory.list_gpus()[0].processes == EXPECTED
        v3_calls = lib.calls[V3]
        inventory.list_gpus()
    assert lib.calls[V3] == v3_calls  # not tried again


def test_processes_unknown_when_no_call_works(caplog: pytest.LogCaptureFixture) -> None:
    lib = FakeNvmlLib(two_gpus(processes=BUSY, memory_used=4 * GiB), missing={V3, V2})
    with installed(lib), caplog.at_level(logging.WARNING, "bot.adapters.nvml"):
        inventory = NvmlInventory("h")
        inventory.list_gpus()
        gpu = inventory.list_gpus()[0]
    assert gpu.processes == () and not gpu.processes_known
    assert gpu.memory_used_bytes == 4 * GiB and gpu.healthy
    warnings = [r for r in caplog.records if UUID0 in r.getMessage()]
    assert len(warnings) == 1  # once per GPU, not per list


def test_process_list_not_permitted_is_unknown_not_fatal() -> None:
    lib = FakeNvmlLib(two_gpus(processes=BUSY, errors={V3: pynvml.NVML_ERROR_NO_PERMISSION}))
    with installed(lib):
        gpus = NvmlInventory("h").list_gpus()
    assert gpus[0].processes == () and not gpus[0].processes_known and gpus[0].healthy
    assert gpus[1].processes_known  # the other GPU's call worked


def test_used_memory_not_available_is_none() -> None:
    with installed(FakeNvmlLib(two_gpus(processes=[FakeProcess(4242, None)]))):
        gpu = NvmlInventory("h").list_gpus()[0]
    assert gpu.processes == (GpuProcess(4242, None),)


# ---------------------------------------------------------------------- MIG
def mig_host(**parent: object) -> FakeNvmlLib:
    mig_gpu = FakeGpu(UUID1, mig_enabled=True, pci_bus_id="00000000:18:00.0",
                      processes=[FakeProcess(900, GiB, gpu_instance_id=2, compute_instance_id=0)],
                      migs=[FakeMig(MIG_A, slot=0, gpu_instance_id=1, memory_used=0),
                            FakeMig(MIG_B, slot=3, gpu_instance_id=2, memory_used=GiB,
                                    name="NVIDIA H100 80GB HBM3 MIG 3g.40gb",
                                    memory_total=40 * GiB)],
                      **parent)  # type: ignore[arg-type]
    return FakeNvmlLib([FakeGpu(UUID0), mig_gpu])


def test_mig_instances_replace_their_parent() -> None:
    with installed(mig_host()):
        gpus = NvmlInventory("h").list_gpus()
    assert [g.uuid for g in gpus] == [UUID0, MIG_A, MIG_B]
    whole, a, b = gpus
    assert whole.parent_uuid is None
    assert a.parent_uuid == b.parent_uuid == UUID1
    assert (a.index, b.index) == (1, 1)
    assert b.name.endswith("3g.40gb") and b.memory_total_bytes == 40 * GiB
    assert a.processes == () and b.processes == (GpuProcess(900, GiB),)
    assert a.utilization_percent is None  # NVML has no per-instance utilization
    assert a.pci_bus_id == "00000000:18:00.0"


def test_mig_mode_without_instances_offers_nothing_from_that_gpu() -> None:
    lib = mig_host()
    lib.gpus[1].migs = []
    with installed(lib):
        assert [g.uuid for g in NvmlInventory("h").list_gpus()] == [UUID0]


def test_mig_instances_inherit_parent_health() -> None:
    with installed(mig_host(ecc_uncorrected_volatile=2)):
        gpus = NvmlInventory("h").list_gpus()
    assert [g.healthy for g in gpus] == [True, False, False]
    assert "2 uncorrected ECC" in (gpus[2].health_reason or "")


# ------------------------------------------------------------------- health
@pytest.mark.parametrize(("fields", "fragment"), [
    ({"ecc_uncorrected_volatile": 1}, "1 uncorrected ECC error"),
    ({"remapped_rows": (0, 1, 1, 0)}, "remapping pending"),
    ({"remapped_rows": (0, 1, 0, 1)}, "remapping failed"),
])
def test_unhealthy_hardware(fields: dict[str, object], fragment: str) -> None:
    with installed(FakeNvmlLib(two_gpus(**fields))):
        gpu, other = NvmlInventory("h").list_gpus()
    assert not gpu.healthy and fragment in (gpu.health_reason or "")
    assert other.healthy


def test_corrected_remaps_alone_are_healthy() -> None:
    with installed(FakeNvmlLib(two_gpus(remapped_rows=(3, 0, 0, 0)))):
        assert NvmlInventory("h").list_gpus()[0].healthy


@pytest.mark.parametrize("call", ["nvmlDeviceGetTotalEccErrors", "nvmlDeviceGetUtilizationRates",
                                  "nvmlDeviceGetMemoryInfo_v2"])
def test_lost_on_any_field_marks_the_gpu_unhealthy(call: str) -> None:
    with installed(FakeNvmlLib(two_gpus(errors={call: pynvml.NVML_ERROR_GPU_IS_LOST}))):
        gpu = NvmlInventory("h").list_gpus()[0]
    assert not gpu.healthy and gpu.uuid == UUID0


def test_older_nvidia_ml_py_without_newer_wrappers(monkeypatch: pytest.MonkeyPatch) -> None:
    for wrapper in ("nvmlDeviceGetTemperatureV", V3, "nvmlMemory_v2",
                    "nvmlSystemGetCudaDriverVersion_v2"):
        monkeypatch.delattr(pynvml, wrapper)
    with installed(FakeNvmlLib(two_gpus(processes=BUSY, temperature=61, memory_used=GiB))):
        inventory = NvmlInventory("h")
        gpu = inventory.list_gpus()[0]
        assert inventory.driver().cuda_version == "12.4"
    assert (gpu.temperature_c, gpu.processes) == (61, EXPECTED)
    assert gpu.memory_used_bytes == GiB + 512 * 1024**2  # v1 memory
