"""Figure 11: 200 claims at once against a Slurm cluster of 2 nodes × 4 GPUs (PostgreSQL).

Figure 3's harness (bench/concurrency.fire: a thread, an engine and a connection per user,
a barrier, then ``ClaimService.claim`` at once) over the cluster's inventory; then, as the
bot's slow lane does after answering, each granted lease is started with the real
``SlurmRuntime`` (one batch job each, all at once) until its Jupyter answers. Duplicates are
looked for where each could hide: a GPU index held by two running jobs (slurmctld's own
accounting, ``scontrol -d show job``), a lease with two jobs (``sacct``: every job of the
round, ended ones too), a GPU or port held by two live leases in the database.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

from bench.concurrency import SLOWEST_LIMIT_S, VARIANTS, SqlCounter, duplicates, fire
from bench.result import Section, Table, Target
from bench.slurm import HOST, TITLES, cluster, inventory
from bench.stats import SUMMARY_HEADER, Summary, row

CLAIMS, NODES, GPUS_PER_NODE = 200, ("gn01", "gn02"), 4
GPUS = len(NODES) * GPUS_PER_NODE


class TimedInventory:
    """The inventory, timing each ``list_gpus`` (its lock and cache included)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.took, self._lock = inner, [], threading.Lock()

    def list_gpus(self) -> list[Any]:
        started = time.perf_counter()
        try:
            return self.inner.list_gpus()
        finally:
            with self._lock:
                self.took.append(time.perf_counter() - started)

    def driver(self) -> Any:
        return self.inner.driver()


def start_granted(url: str, lease_ids: list[int], runtime: Any, inv: Any,
                  port_range: tuple[int, int]) -> list[tuple[int, float, str]]:
    """``ClaimService.start`` of every granted lease at once: (lease, seconds, status)."""
    from bot.db.engine import Database
    from tests.fakes.services import build_harness

    db = Database(url, pool_size=2 * len(lease_ids) + 2, max_overflow=0)
    kit = build_harness(db, inventory=inv, runtime=runtime, port_range=port_range,
                        ready_timeout=timedelta(minutes=5))
    done: list[tuple[int, float, str]] = []
    lock = threading.Lock()

    def one(lease_id: int) -> None:
        started = time.perf_counter()
        try:
            status = kit.claims.start(lease_id).status.value
        except Exception as exc:  # noqa: BLE001 - counted and shown
            status = f"error: {type(exc).__name__}: {exc}"
        with lock:
            done.append((lease_id, time.perf_counter() - started, status))

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in lease_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=400)
    db.dispose()
    return done


def accounted(running: Any) -> list[tuple[int, str]]:
    """(job id, job name) of every job sacct knows, ended ones too."""
    out = running.run("sacct", "-X", "-n", "-P", "-u", running.user, "-o", "JobID,JobName")
    return [(int(job), name) for job, _, name in (line.partition("|") for line in out.splitlines())
            if job.isdigit()]


def cluster_duplicates(running: Any, after_job: int) -> tuple[int, int, int]:
    """(running jobs, GPU indices held by two running jobs, leases with two jobs among the
    jobs after ``after_job``: this round's)."""
    from tests.infra.slurm_engine import gpu_indices

    held = gpu_indices(running)
    pairs = [(node, i) for node, indices in held.values() for i in indices]
    names = Counter(name for job, name in accounted(running)
                    if job > after_job and name.startswith("gpubot-"))
    return len(held), len(pairs) - len(set(pairs)), sum(1 for c in names.values() if c > 1)


def run(*, rounds: int, log: Any = print) -> Section:
    from bench import pg
    from bench.serve import free_block
    from bot.adapters.slurm import SlurmRuntime
    from bot.db import migrate
    from tests.infra import slurm_engine as eng

    per_round: dict[str, list[dict[str, Any]]] = {v: [] for v, _ in VARIANTS}
    latencies: dict[str, list[float]] = {v: [] for v, _ in VARIANTS}
    errors: list[str] = []
    with pg.server_for(CLAIMS) as server, \
            cluster(nodes=NODES, gpus_per_node=GPUS_PER_NODE) as running:
        runtime = SlurmRuntime(eng.runtime_config(running, host=HOST))
        block = free_block(20)
        ports = (block.start, block.stop - 1)
        for r in range(rounds):
            for variant, _ in VARIANTS:
                inv = TimedInventory(inventory(running))
                before = max((job for job, _ in accounted(running)), default=0)
                with pg.database(server.url) as url:
                    migrate.upgrade(url)
                    counter = SqlCounter()
                    try:
                        results, wall = fire(url, [f"US{r:02d}{variant[0].upper()}{i:04d}"
                                                   for i in range(CLAIMS)], GPUS,
                                             warm=variant == "warm", counter=counter,
                                             inventory=inv, port_range=ports)
                    finally:
                        counter.close()
                    granted = [int(o.split(":")[1]) for _, _, o in results
                               if o.startswith("granted:")]
                    started = start_granted(url, granted, runtime, inv, ports)
                    jobs, dup_indices, dup_jobs = cluster_duplicates(running, before)
                    live, dup_gpus, dup_ports = duplicates(url)
                eng.cancel_all(running)  # the next round starts on an empty cluster
                outcomes = Counter(o.split(":")[0] for _, _, o in results)
                errors += [o for _, _, o in results if o.startswith("error")]
                errors += [s for _, _, s in started if s != "active"]
                lat = [e for _, e, _ in results]
                latencies[variant] += lat
                p = {"answered": len(results), "granted": outcomes["granted"],
                     "queued": outcomes["queued"],
                     "other": len(results) - outcomes["granted"] - outcomes["queued"],
                     "active": sum(1 for _, _, s in started if s == "active"),
                     "start_slowest": max((s for _, s, _ in started), default=float("nan")),
                     "jobs": jobs, "dup_indices": dup_indices, "dup_jobs": dup_jobs,
                     "dup_gpus": dup_gpus, "dup_ports": dup_ports, "wall": wall,
                     "slowest": max(lat) if lat else float("nan"),
                     "conflicts": counter.conflicts, "statements": counter.statements,
                     "reads": len(inv.took), "read_max": max(inv.took, default=float("nan"))}
                per_round[variant].append(p)
                log(f"  round {r + 1}/{rounds} {variant}: granted {p['granted']}, queued "
                    f"{p['queued']}, other {p['other']}, slowest answer {p['slowest']:.3f} s; "
                    f"{p['active']} active, {jobs} jobs running, duplicates {dup_indices} "
                    f"indices, {dup_jobs} leases, {dup_gpus}+{dup_ports} in the database")
    return section(per_round, latencies, errors, server=server, rounds=rounds)


def section(per_round: dict[str, list[dict[str, Any]]], latencies: dict[str, list[float]],
            errors: list[str], *, server: Any, rounds: int) -> Section:
    where = (f"a private PostgreSQL started for this figure (`max_connections="
             f"{server.max_connections}`)" if server.private
             else "the configured PostgreSQL server")
    out = Section("slurm", TITLES["slurm_burst"], method=(
        f"{rounds} round(s) of each variant of figure 3, each on a fresh database of {where} "
        f"(PostgreSQL {server.version}) and an empty test cluster of {len(NODES)} nodes × "
        f"{GPUS_PER_NODE} fake GPUs: {CLAIMS} threads, one user, engine and connection each, "
        "wait on a barrier, then all call `ClaimService.claim(24h)` at once (real services, "
        "`SlurmInventory` over the cluster, one for all threads as in `gpubot serve`; "
        "*cold* and *warm* as in figure 3). *Answer*: release of the "
        "barrier → the claim returned (granted or queued: what the person is told), not the "
        "Jupyter start. Then, as the bot's slow lane does after answering, every granted "
        "lease is started at once with the real `SlurmRuntime` (`ClaimService.start`: one "
        "batch job each, 1 CPU and 512 MB) until its Jupyter answers. Duplicates, looked for "
        "where each could hide: a GPU index held by two running jobs (slurmctld's own "
        "accounting, `scontrol -d show job`), a lease with two jobs (`sacct`: every job of "
        "the round, ended ones too), a GPU or port held by two live leases in the database. "
        "*Inventory reads*: calls of `list_gpus` in the claims and the starts, and the "
        "slowest (its lock and cache included)."))
    rows = []
    for variant, label in VARIANTS:
        for i, p in enumerate(per_round[variant]):
            rows.append([label, str(i + 1), str(p["answered"]), str(p["granted"]),
                         str(p["queued"]), str(p["other"]), f"{p['slowest']:.3f}",
                         str(p["active"]), str(p["jobs"]), f"{p['start_slowest']:.1f}",
                         str(p["dup_indices"]), str(p["dup_jobs"]),
                         f"{p['dup_gpus']}+{p['dup_ports']}", str(p["conflicts"]),
                         f"{p['reads']} / {p['read_max']:.3f}",
                         f"{p['statements'] / max(1, p['answered']):.1f}"])
    out.tables.append(Table("outcomes per round", [
        "variant", "round", "answered", "granted", "queued", "other/errors", "slowest answer s",
        "started (active)", "jobs running", "slowest start s", "GPU index twice",
        "lease with two jobs", "GPU+port twice in the database", "insert conflicts",
        "inventory reads / slowest s",
        "statements per claim"], rows))
    out.tables.append(Table("answer time over all rounds (seconds)", ["", *SUMMARY_HEADER],
                            [row(label, Summary.of(latencies[v]), "{:.3f}")
                             for v, label in VARIANTS]))
    if errors:
        out.notes.append("errors: " + "; ".join(sorted(set(errors))[:5]))
    every = [p for v in per_round.values() for p in v]
    dups = sum(p["dup_indices"] + p["dup_jobs"] + p["dup_gpus"] + p["dup_ports"] for p in every)
    right = all(p["answered"] == CLAIMS and p["granted"] == GPUS and p["queued"] == CLAIMS - GPUS
                and p["active"] == GPUS == p["jobs"] for p in every)
    slowest = max((p["slowest"] for p in per_round["warm"]), default=float("nan"))
    cold = max((p["slowest"] for p in per_round["cold"]), default=float("nan"))
    out.targets += [
        Target("Slurm duplicates (200 claims, 2 × 4 GPUs)", "0",
               f"{dups} (GPU index twice, lease with two jobs, GPU or port twice in the database)",
               dups == 0),
        Target("Slurm: every claim answered, 8 granted and running, the rest queued",
               f"{CLAIMS} answered, {GPUS} granted and running, {CLAIMS - GPUS} queued",
               "; ".join(f"{p['answered']}/{p['granted']}/{p['jobs']}/{p['queued']}"
                         for p in every) + " (answered/granted/running/queued)", right),
        Target("Slurm slowest answer (warm engines)", f"< {SLOWEST_LIMIT_S:.0f} s",
               f"{slowest:.3f} s (median of answers {Summary.of(latencies['warm']).median:.3f} s; "
               f"cold: slowest {cold:.3f} s)", slowest < SLOWEST_LIMIT_S),
    ]
    return out
