"""``GpuInventory`` of a Slurm partition (GPUBOT_ENGINE=slurm), from slurmrestd.

Each GPU of each node in the partition (its GRES, e.g. ``gpu:a100:4``; only the
GPUBOT_SLURM_GPU_TYPE ones, when set) is one leasable
unit, ``SLURM-<node>/<index>`` (``slot_uuid``). gpubot grants units as on one host, so its
fair queue decides who is next; the Slurm engine then pins the lease's job to the unit's
node and Slurm picks the GPUs there, enforces and accounts them. The units of a node that
is down, drained or not responding are unhealthy (a lease is never granted onto a lost
node); the GPUs that Slurm has given to jobs outside this gpubot (other cluster users,
another bot) show as busy. GPU memory and utilization are not known to Slurm: those stay
``None``.

A listing costs two REST calls (nodes, jobs); it is kept for ``ttl`` seconds, so a burst of
claims reads the cluster once and not once per claim.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from bot.adapters.slurm_rest import SlurmRest
from bot.adapters.slurm_script import read_labels
from bot.adapters.slurm_state import is_alive, lease_of, slot_uuid
from bot.domain.gpus import DriverInfo, GpuInfo

_GRES = re.compile(r"gpu(?::(?P<type>[^:(,]+))?:(?P<count>\d+)")
_IDX = re.compile(r"gpu(?::[^:(,]+)?:\d+\(IDX:(?P<idx>[^)]*)\)")
# Node states (base state or flag) under which no new lease may land there.
_LOST = frozenset({"DOWN", "DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "FUTURE",
                   "NOT_RESPONDING", "NO_RESPOND", "UNKNOWN", "MAINTENANCE", "POWERED_DOWN",
                   "POWERING_DOWN", "REBOOT_REQUESTED", "REBOOT_ISSUED", "INVALID_REG"})


def gres_gpus(gres: str | None, gpu_type: str = "") -> tuple[str, int]:
    """(type, count) of a node's GPU GRES of ``gpu_type`` (any when empty):
    ``gpu:a100:4(S:0)`` -> ("a100", 4)."""
    total, kind = 0, ""
    for match in _GRES.finditer(gres or ""):
        if gpu_type and match["type"] != gpu_type:
            continue
        total += int(match["count"])
        kind = kind or (match["type"] or "")
    return kind, total


def gres_indices(gres: str | None) -> set[int]:
    """The GPU indices in a GRES-with-IDX string: ``gpu:a100:2(IDX:0,2-3)`` -> {0, 2, 3}."""
    found: set[int] = set()
    for match in _IDX.finditer(gres or ""):
        for part in match["idx"].split(","):
            low, _, high = part.partition("-")
            if low.strip().isdigit():
                found.update(range(int(low), int(high or low) + 1))
    return found


def node_trouble(node: Mapping[str, Any]) -> str | None:
    """Why no lease may land on ``node`` now, or None."""
    state = node.get("state") or ""
    states = {str(s).upper() for s in (state if isinstance(state, list) else [state])}
    states |= {str(f).upper() for f in node.get("state_flags") or []}
    bad = sorted(states & _LOST)
    if not bad:
        return None
    reason = f" ({node['reason']})" if node.get("reason") else ""
    return f"Slurm node {node.get('name')} is {'+'.join(bad).lower()}{reason}"


class SlurmInventory:
    def __init__(self, rest: SlurmRest, *, partition: str, host: str, gpu_type: str = "",
                 ttl: float = 1.0) -> None:
        self._rest, self._partition, self._host, self._gpu_type = rest, partition, host, gpu_type
        self.ttl = ttl  # seconds a listing is reused
        self._lock = threading.Lock()
        self._cached: tuple[float, list[GpuInfo]] | None = None

    def list_gpus(self) -> list[GpuInfo]:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.ttl:
                return list(self._cached[1])
            gpus = self._read()
            self._cached = (time.monotonic(), gpus)
            return list(gpus)

    def driver(self) -> DriverInfo:
        return DriverInfo(driver_version=None, cuda_version=None)  # per node; not known here

    def _read(self) -> list[GpuInfo]:
        nodes = [n for n in self._rest.nodes() if self._partition in (n.get("partitions") or [])]
        foreign = self._foreign_indices(self._rest.jobs())
        gpus = []
        for node in sorted(nodes, key=lambda n: str(n.get("name"))):
            name = str(node.get("name"))
            kind, count = gres_gpus(node.get("gres"), self._gpu_type)
            trouble = node_trouble(node)
            held = foreign.get(name, set())
            for index in range(count):
                gpus.append(GpuInfo(
                    uuid=slot_uuid(name, index), index=index,
                    name=f"{kind.upper() or 'GPU'} ({name})", host=self._host,
                    healthy=trouble is None, health_reason=trouble,
                    # Slurm gave this GPU to a job that is not ours: nothing says it is idle
                    processes_known=index not in held))
        return gpus

    def _foreign_indices(self, jobs: Iterable[Mapping[str, Any]]) -> dict[str, set[int]]:
        """Node -> GPU indices that running jobs other than this gpubot's hold."""
        held: dict[str, set[int]] = {}
        for job in jobs:
            if not is_alive(job) or lease_of(job, read_labels(job.get("comment")), self._host):
                continue
            node = str(job.get("batch_host") or job.get("nodes") or "")
            for detail in job.get("gres_detail") or []:
                held.setdefault(node, set()).update(gres_indices(str(detail)))
        return held
