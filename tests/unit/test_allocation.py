from datetime import UTC, datetime

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
