from datetime import UTC, datetime

import pytest

from bot.domain import allocation
from bot.domain.gpus import GpuInfo, GpuProcess

GIB = 1024**3


def gpu(i: int, **kw: object) -> GpuInfo:
    values = dict(uuid=f"GPU-{i}", index=i, name="NVIDIA H100 80GB HBM3", host="h1",
                  memory_used_bytes=0)
    values.update(kw)
    return GpuInfo(**values)  # type: ignore[arg-type]


def choose(gpus, count=1, taken=(), model=None, last=None):
    picked = allocation.choose(gpus, count=count, taken=set(taken), busy_memory_bytes=GIB,
                               model=model, last_leased=last)
    return None if picked is None else [g.uuid for g in picked]


def test_skips_taken_busy_unhealthy_and_memory_hogs() -> None:
    gpus = [gpu(0), gpu(1, processes=(GpuProcess(1, None),)), gpu(2, healthy=False),
            gpu(3, memory_used_bytes=2 * GIB), gpu(4, memory_used_bytes=None), gpu(5)]
    assert choose(gpus, taken={"GPU-0"}) == ["GPU-4"]
    assert choose(gpus, count=2, taken={"GPU-0"}) == ["GPU-4", "GPU-5"]
    assert choose(gpus, count=3, taken={"GPU-0"}) is None


def test_unknown_processes_leave_the_memory_threshold_to_decide() -> None:
    gpus = [gpu(0, processes_known=False, memory_used_bytes=2 * GIB),
            gpu(1, processes_known=False, memory_used_bytes=None),  # nothing known
            gpu(2, processes_known=False, memory_used_bytes=GIB // 2)]
    assert choose(gpus) == ["GPU-2"]
    assert choose(gpus, count=2) is None


def test_least_recently_leased_first() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    last = {"GPU-0": t.replace(day=3), "GPU-1": t.replace(day=2)}
    assert choose([gpu(0), gpu(1), gpu(2)], last=last) == ["GPU-2"]
    assert choose([gpu(0), gpu(1)], last=last) == ["GPU-1"]


def test_model_filter_and_one_host() -> None:
    gpus = [gpu(0, name="NVIDIA A100-SXM4-80GB"), gpu(1), gpu(2, host="h2"), gpu(3, host="h2")]
    assert choose(gpus, model="a100") == ["GPU-0"]
    assert choose(gpus, model="v100") is None
    assert choose(gpus, count=2, model="h100") == ["GPU-2", "GPU-3"]


def test_busy_outside_leases() -> None:
    busy = gpu(1, processes=(GpuProcess(99, GIB),))
    leased_busy = gpu(2, processes=(GpuProcess(98, GIB),))
    found = allocation.busy_outside_leases([gpu(0), busy, leased_busy], taken={"GPU-2"})
    assert [g.uuid for g in found] == ["GPU-1"]


NAMES = ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA L40S",
         "NVIDIA GeForce RTX 4090", "Synthetic GPU"]


@pytest.mark.parametrize(("model", "matched"), [
    ("h100", ["GPU-0"]), ("H100", ["GPU-0"]), ("a100", ["GPU-1"]), ("l40s", ["GPU-2"]),
    ("rtx-4090", ["GPU-3"]), ("rtx4090", ["GPU-3"]), ("synthetic", ["GPU-4"]),
    ("h", []), ("n", []), ("100", []), ("nvid", []), ("l40", []), ("a1", []), ("-", []),
])
def test_models_match_whole_tokens_of_gpu_names(model: str, matched: list[str]) -> None:
    gpus = [gpu(i, name=n) for i, n in enumerate(NAMES)]
    assert [g.uuid for g in gpus if allocation.matches_model(g, model)] == matched
    assert allocation.is_known_model(gpus, model) is bool(matched)


def test_models_on_offer_are_the_words_people_type() -> None:
    gpus = [gpu(i, name=n) for i, n in enumerate(NAMES + ["NVIDIA H100 80GB HBM3"])]
    assert allocation.models_on_offer(gpus) == ["a100", "h100", "l40s", "rtx-4090",
                                                "synthetic"]
    for name in NAMES:  # each listed word claims its model
        assert allocation.matches_model(gpu(0, name=name), allocation.model_of(name))


def test_an_unknown_model_is_refused_naming_the_models_on_offer() -> None:
    gpus = [gpu(0), gpu(1, name="NVIDIA A100-SXM4-80GB", healthy=False)]
    allocation.require_known_model(gpus, "a100")  # known, even while unhealthy
    allocation.require_known_model(gpus, None)
    with pytest.raises(allocation.UnknownModel) as err:
        allocation.require_known_model(gpus, "h")
    assert "`h`" in err.value.message and "`a100`, `h100`" in err.value.message
    with pytest.raises(allocation.UnknownModel, match="no GPU is on offer"):
        allocation.require_known_model([], "h100")
