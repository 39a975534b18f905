"""SyntheticInventory: what GPUBOT_FAKE_GPUS=N gives a host without NVIDIA GPUs."""

from __future__ import annotations

import logging
import re

import pytest

from bot.adapters.fake_gpus import SyntheticInventory, synthetic_uuid

NVML_UUID = re.compile(r"^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_uuids_are_nvml_shaped_stable_and_distinct() -> None:
    first = [g.uuid for g in SyntheticInventory(4, "lab-1").list_gpus()]
    again = [g.uuid for g in SyntheticInventory(4, "lab-1").list_gpus()]
    other_host = [g.uuid for g in SyntheticInventory(4, "lab-2").list_gpus()]
    assert first == again
    assert all(NVML_UUID.match(u) for u in first), first
    assert len(set(first)) == 4 and not set(first) & set(other_host)
    assert first[2] == synthetic_uuid("lab-1", 2)


def test_growing_the_count_keeps_existing_uuids() -> None:
    small = [g.uuid for g in SyntheticInventory(2, "lab-1").list_gpus()]
    large = [g.uuid for g in SyntheticInventory(5, "lab-1").list_gpus()]
    assert large[:2] == small


def test_gpus_are_healthy_idle_and_described() -> None:
    gpus = SyntheticInventory(3, "lab-1", model="Fake A100", memory_total_bytes=40 * 1024**3).list_gpus()
    assert [g.index for g in gpus] == [0, 1, 2]
    for gpu in gpus:
        assert gpu.healthy and gpu.processes == () and gpu.parent_uuid is None
        assert (gpu.name, gpu.host) == ("Fake A100", "lab-1")
        assert (gpu.memory_total_bytes, gpu.memory_used_bytes) == (40 * 1024**3, 0)


def test_default_model_name() -> None:
    assert SyntheticInventory(1, "h").list_gpus()[0].name == "Synthetic GPU"


def test_warns_loudly_at_construction(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "bot.adapters.fake_gpus"):
        SyntheticInventory(2, "lab-1")
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "SYNTHETIC" in record.getMessage() and "GPUBOT_FAKE_GPUS=2" in record.getMessage()


def test_driver_is_unknown() -> None:
    info = SyntheticInventory(1, "h").driver()
    assert (info.driver_version, info.cuda_version) == (None, None)


@pytest.mark.parametrize("count", [0, -1])
def test_rejects_empty_counts(count: int) -> None:
    with pytest.raises(ValueError):
        SyntheticInventory(count, "h")


def test_callers_cannot_change_the_inventory_through_the_list() -> None:
    inventory = SyntheticInventory(2, "h")
    inventory.list_gpus().clear()
    assert len(inventory.list_gpus()) == 2
