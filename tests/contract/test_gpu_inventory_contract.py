"""The GpuInventory contract, run on every implementation: the hand-written fake the
service tests use, the synthetic inventory (GPUBOT_FAKE_GPUS), the NVML adapter over the
scripted libnvidia-ml, the real NVML where this machine has one, and the Slurm
partition's GPUs on the real two-node test cluster (GPUBOT_ENGINE=slurm)."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.adapters.fake_gpus import SyntheticInventory
from bot.adapters.nvml import NvmlInventory
from bot.domain.errors import GpuBackendUnavailable
from bot.domain.gpus import DriverInfo, GpuInfo
from bot.ports import GpuInventory
from tests.fakes.gpus import FakeInventory
from tests.fakes.pynvml_standin import (
    FakeGpu,
    FakeMig,
    FakeNvmlLib,
    FakeProcess,
    GiB,
    installed,
)

UUID = re.compile(r"^(GPU|MIG)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
                  r"|^SLURM-[A-Za-z0-9._-]+/\d+$")  # a GPU of a Slurm node: node and index


@dataclass
class Subject:
    inventory: GpuInventory
    host: str


def _fake() -> Iterator[Subject]:
    inventory = FakeInventory(3, host="gpu-host-1")
    inventory.make_busy(1)
    yield Subject(inventory, "gpu-host-1")


def _synthetic() -> Iterator[Subject]:
    yield Subject(SyntheticInventory(3, "lab-1"), "lab-1")


def _standin() -> Iterator[Subject]:
    lib = FakeNvmlLib([
        FakeGpu("GPU-0a0a0a0a-0000-4000-8000-000000000000", processes=[FakeProcess(4242, GiB)],
                memory_used=GiB, utilization=64),
        FakeGpu("GPU-1b1b1b1b-1111-4111-8111-111111111111", ecc_uncorrected_volatile=3),
        FakeGpu("GPU-2c2c2c2c-2222-4222-8222-222222222222", mig_enabled=True,
                processes=[FakeProcess(77, GiB, gpu_instance_id=1, compute_instance_id=0)],
                migs=[FakeMig("MIG-aaaaaaaa-aaaa-5aaa-8aaa-aaaaaaaaaaaa", slot=0, memory_used=GiB),
                      FakeMig("MIG-bbbbbbbb-bbbb-5bbb-8bbb-bbbbbbbbbbbb", slot=1,
                              gpu_instance_id=2)]),
    ])
    with installed(lib):
        inventory = NvmlInventory("standin-host")
        yield Subject(inventory, "standin-host")
        inventory.close()


def _real_nvml() -> Iterator[Subject]:
    host = socket.gethostname()
    try:
        inventory = NvmlInventory(host)
    except GpuBackendUnavailable as exc:
        pytest.skip(f"no real NVML on this machine: {exc.message}")
    yield Subject(inventory, host)
    inventory.close()


def _slurm() -> Iterator[Subject]:
    from bot.adapters.slurm_inventory import SlurmInventory
    from bot.adapters.slurm_rest import SlurmRest
    from tests.infra import slurm_engine as eng

    cluster = eng.shared_cluster()
    rest = SlurmRest(cluster.url, token_file=cluster.token_file, user=cluster.user)
    yield Subject(SlurmInventory(rest, partition=cluster.partition, host="slurm-bot"), "slurm-bot")


SUBJECTS: dict[str, Callable[[], Iterator[Subject]]] = {
    "fake": _fake, "synthetic": _synthetic, "nvml-standin": _standin, "nvml-real": _real_nvml,
    "slurm": _slurm,
}


@pytest.fixture(params=[
    "fake", "synthetic", "nvml-standin", pytest.param("nvml-real", marks=pytest.mark.gpu),
    pytest.param("slurm", marks=pytest.mark.slurm)])
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    yield from SUBJECTS[request.param]()


def test_lists_gpu_infos_of_this_host(subject: Subject) -> None:
    gpus = subject.inventory.list_gpus()
    assert gpus, "an inventory with GPUs lists at least one unit"
    assert all(isinstance(g, GpuInfo) and g.host == subject.host for g in gpus)


def test_uuids_are_nvml_shaped_and_unique(subject: Subject) -> None:
    gpus = subject.inventory.list_gpus()
    assert len({g.uuid for g in gpus}) == len(gpus)
    for gpu in gpus:
        if gpu.healthy:  # a GPU lost before it was ever read may have no UUID to give
            assert UUID.match(gpu.uuid), gpu.uuid


def test_mig_units_name_their_parent_and_whole_gpus_do_not(subject: Subject) -> None:
    gpus = subject.inventory.list_gpus()
    uuids = {g.uuid for g in gpus}
    for gpu in gpus:
        if gpu.uuid.startswith("MIG-"):
            assert gpu.parent_uuid and gpu.parent_uuid.startswith("GPU-")
            assert gpu.parent_uuid not in uuids, "a GPU in MIG mode is not itself leasable"
        else:
            assert gpu.parent_uuid is None


def test_listing_is_stable(subject: Subject) -> None:
    first = [(g.uuid, g.index) for g in subject.inventory.list_gpus()]
    assert [(g.uuid, g.index) for g in subject.inventory.list_gpus()] == first


def test_health_reason_explains_exactly_the_unhealthy(subject: Subject) -> None:
    for gpu in subject.inventory.list_gpus():
        assert (gpu.health_reason is None) == gpu.healthy, gpu


def test_numbers_are_plausible(subject: Subject) -> None:
    for gpu in subject.inventory.list_gpus():
        if gpu.memory_total_bytes is not None:
            assert gpu.memory_total_bytes > 0
            if gpu.memory_used_bytes is not None:
                assert 0 <= gpu.memory_used_bytes <= gpu.memory_total_bytes
        if gpu.utilization_percent is not None:
            assert 0 <= gpu.utilization_percent <= 100
        for process in gpu.processes:
            assert process.pid > 0
            assert process.used_memory_bytes is None or process.used_memory_bytes >= 0


def test_the_list_belongs_to_the_caller(subject: Subject) -> None:
    gpus: list[Any] = subject.inventory.list_gpus()
    count = len(gpus)
    gpus.clear()
    assert len(subject.inventory.list_gpus()) == count


def test_driver_info(subject: Subject) -> None:
    info = subject.inventory.driver()
    assert isinstance(info, DriverInfo)
    if info.cuda_version is not None:
        assert re.fullmatch(r"\d+\.\d+", info.cuda_version), info.cuda_version
