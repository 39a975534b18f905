"""Figures 10-12: the Slurm engine on a real cluster (issue 14's performance, issue 15.5).

Each figure starts its own test cluster (tests/infra/slurm_cluster.py: Debian's Slurm 22.05,
slurmctld + one ``slurmd -N`` per node + slurmdbd + slurmrestd on this machine, fake GPUs
as device files) and stops it by PID afterwards; each runs in a process of its own
(bench/_figure.py). Without the Slurm parts (tests/infra/setup_slurm.sh) the figures are
not measured and say why.

- ``slurm_claim`` (bench/slurm_claim.py): ``/gpu claim`` → access DM through the real
  ``gpubot serve`` with ``GPUBOT_ENGINE=slurm``, next to the same job submitted by hand;
- ``slurm_burst`` (bench/slurm_burst.py): 200 claims at once against 2 nodes × 4 GPUs;
- ``slurm_tick`` (bench/slurm_tick.py): one reconcile tick over 1,000 jobs, and ×2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.result import Section, Target

FIGURES = ("slurm_claim", "slurm_burst", "slurm_tick")
TITLES = {"slurm_claim": "10. Slurm: claim to access DM (real cluster, real `gpubot serve`)",
          "slurm_burst": "11. Slurm: 200 claims at once against 2 nodes × 4 GPUs",
          "slurm_tick": "12. Slurm: one reconcile tick over 1,000 jobs"}
HOST = "gpu-host-1"  # build_harness's LeaseConfig.host: the label of the harness' jobs


def missing() -> str | None:
    """Why no test cluster can run here, or None."""
    from bot.adapters.slurm import env_dir
    from tests.infra.slurm_cluster import ENV_ROOT, missing_parts
    from tests.infra.slurm_engine import IMAGE

    problem = missing_parts()
    if problem is None and not (env_dir(ENV_ROOT, IMAGE) / "venv" / "bin" / "jupyter").is_file():
        problem = (f"no Jupyter environment exported from {IMAGE} under {ENV_ROOT} "
                   "(tests/infra/setup_slurm.sh)")
    return problem


def skipped(name: str, why: str) -> Section:
    """A figure not measured here: the reason, in its section and in the targets (n/a)."""
    what = "Slurm: " + TITLES[name].split(": ", 1)[1]
    return Section("slurm", TITLES[name], method="Not measured on this machine.",
                   targets=[Target(what, "—", f"not measured: {why}", None)],
                   notes=[f"not measured: {why}"])


@contextmanager
def cluster(**shape: Any) -> Iterator[Any]:
    """A fresh test cluster (``start_cluster(**shape)``), stopped by PID afterwards, once
    its jobs have ended (a job's slurmstepd outlives a slurmd stopped under it)."""
    from tests.infra.slurm_cluster import start_cluster
    from tests.infra.slurm_engine import cancel_all

    running = start_cluster(**shape)
    try:
        yield running
    finally:
        try:
            cancel_all(running)
        finally:
            running.stop()


def inventory(running: Any, *, rest: Any = None, host: str = HOST) -> Any:
    """The bot's inventory of the cluster, as ``GPUBOT_ENGINE=slurm`` builds it
    (``SlurmInventory``: one unit per GRES GPU of the partition), over ``rest`` or a
    client of its own."""
    from bot.adapters.slurm_inventory import SlurmInventory
    from bot.adapters.slurm_rest import SlurmRest

    rest = rest or SlurmRest(running.url, token_file=running.token_file, user=running.user)
    return SlurmInventory(rest, partition=running.partition, host=host)


def figure(name: str, *, quick: bool, log: Callable[[str], None]) -> Section:
    """Run one Slurm figure (in bench/_figure.py's child process)."""
    why = missing()
    if why is not None:
        log(f"  {name}: skipped: {why}")
        return skipped(name, why)
    if name == "slurm_claim":
        from bench import slurm_claim

        return slurm_claim.run(repeats=2 if quick else 12, log=log)
    if name == "slurm_burst":
        from bench import slurm_burst

        return slurm_burst.run(rounds=1 if quick else 2, log=log)
    if name == "slurm_tick":
        from bench import slurm_tick

        return slurm_tick.run(reps=3 if quick else 30, log=log)
    raise SystemExit(f"unknown Slurm figure {name}")


def run(*, quick: bool, measured: Callable[[str, Callable[[], Section]], Section],
        log: Callable[[str], None]) -> list[Section]:
    """The Slurm figures for ``python -m bench``: each in a process of its own, or one
    line each saying why they were not measured."""
    from bench._figure import run_isolated

    why = missing()
    if why is not None:
        log(f"  skipped: {why}")
        return [skipped(name, why) for name in FIGURES]
    sections = []
    for name in FIGURES:
        log(f"\n== {name}")
        sections.append(measured("slurm", lambda name=name: run_isolated(name, quick=quick)))
    return sections


GROWTH_METHOD = (" The Slurm rows: the reconcile tick of figure 12 with 1,000 and 2,000 jobs "
                 "on 2 nodes (leases as many), and with 1,000 jobs on 2 and on 4 nodes.")


def growth_rows(metrics: dict[str, float]) -> list[list[str]]:
    """Rows for figure 8: the reconcile tick over the cluster's jobs, jobs ×2 and nodes ×2."""
    from bench.slurm_tick import GROWTH

    rows = []
    for what, before, after in GROWTH:
        for backend in ("sqlite", "postgresql"):
            a = [metrics.get(f"slurm_tick:{backend}:{before}:{f}") for f in ("median_ms", "p99_ms")]
            b = [metrics.get(f"slurm_tick:{backend}:{after}:{f}") for f in ("median_ms", "p99_ms")]
            if None in a or None in b:
                continue
            rows.append([f"Slurm reconcile tick ({backend})", what, f"{a[0]:.1f} ms",
                         f"{b[0]:.1f} ms", f"{b[0] / a[0]:.2f}×", f"{b[1] / a[1]:.2f}×", "—"])
    return rows
