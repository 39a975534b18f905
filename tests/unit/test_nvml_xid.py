"""Critical XID events through the real pynvml wrappers, with a scripted libnvidia-ml."""

from __future__ import annotations

import logging

import pynvml
import pytest

from bot.adapters.nvml import NvmlInventory
from tests.fakes.pynvml_standin import FakeGpu, FakeMig, FakeNvmlLib, installed

UUID0 = "GPU-0a0a0a0a-0000-4000-8000-000000000000"
UUID1 = "GPU-1b1b1b1b-1111-4111-8111-111111111111"
MIG_A = "MIG-aaaaaaaa-aaaa-5aaa-8aaa-aaaaaaaaaaaa"
WAIT = "nvmlEventSetWait_v2"


def host(**second: object) -> FakeNvmlLib:
    return FakeNvmlLib([FakeGpu(UUID0), FakeGpu(UUID1, **second)])  # type: ignore[arg-type]


def test_a_critical_xid_takes_the_gpu_out_of_service_until_restart(caplog) -> None:
    lib = host()
    with installed(lib), caplog.at_level(logging.INFO, "bot.adapters.nvml_xid"):
        inventory = NvmlInventory("h")
        assert all(g.healthy for g in inventory.list_gpus())  # registers both GPUs
        lib.xid(1, 79)
        first, second = inventory.list_gpus()
        assert first.healthy and not second.healthy
        assert "critical XID 79" in (second.health_reason or "")
        assert not inventory.list_gpus()[1].healthy  # sticky
        inventory.close()
    assert any("XID 79 on " + UUID1 in r.getMessage() for r in caplog.records)
    assert lib.calls["nvmlEventSetFree"] == 1


def test_an_application_xid_leaves_the_gpu_in_service() -> None:
    lib = host()
    with installed(lib):
        inventory = NvmlInventory("h")
        inventory.list_gpus()
        lib.xid(1, 13)  # graphics engine exception: the user's kernel faulted
        lib.xid(0, 31)  # GPU memory page fault: likewise
        assert all(g.healthy for g in inventory.list_gpus())


def test_an_idle_poll_costs_one_call_per_listing() -> None:
    lib = host()
    with installed(lib):
        inventory = NvmlInventory("h")
        for _ in range(3):
            inventory.list_gpus()
    assert lib.calls[WAIT] == 3


def test_mig_instances_share_their_parents_xid() -> None:
    lib = host(mig_enabled=True, migs=[FakeMig(MIG_A, slot=0)])
    with installed(lib):
        inventory = NvmlInventory("h")
        inventory.list_gpus()
        lib.xid(1, 48)  # double-bit ECC error
        gpus = inventory.list_gpus()
    assert [(g.uuid, g.healthy) for g in gpus] == [(UUID0, True), (MIG_A, False)]


NO_EVENTS = {"nvmlDeviceRegisterEvents": pynvml.NVML_ERROR_NOT_SUPPORTED}


@pytest.mark.parametrize("lib", [
    FakeNvmlLib([FakeGpu(UUID0, errors=NO_EVENTS), FakeGpu(UUID1, errors=NO_EVENTS)]),
    FakeNvmlLib([FakeGpu(UUID0)], missing={"nvmlEventSetCreate"}),
], ids=["gpu-without-events", "driver-without-event-sets"])
def test_without_xid_events_the_gpus_are_listed_as_usual(lib: FakeNvmlLib) -> None:
    with installed(lib):
        inventory = NvmlInventory("h")
        inventory.list_gpus()
        for index in range(len(lib.gpus)):
            lib.xid(index, 79)  # never delivered: nobody registered for it
        assert all(g.healthy for g in inventory.list_gpus())
        inventory.close()
