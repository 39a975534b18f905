"""Figure 7: the idle-sampling tick (``IdleService.sample``) with 10,000 leases in the
database, 64 of them active on 64 GPUs, some idle, some requests waiting, on SQLite and
PostgreSQL: time per tick and SQL statements per tick, with 1 idle lease and with all
idle (the statement count must not depend on how many are idle).

The real services (``tests/fakes/services.build_harness``) run over the real database with
``FakeInventory(64)`` (utilization set per GPU), ``FakeJupyterProbe`` (kernel busy or
quiet per lease), ``FakeContainerRuntime``, ``RecordingNotifier`` and ``FakeClock``. The
population is bench/ticks.py's (tests/support/population.py), then all but the active
leases are ended and a few turned into waiting requests. Before every repetition the
rows the tick reads and writes are put back (bulk statements, not timed), so every
repetition has the same work. Three kinds of tick:

- *sample*: the idle leases have been idle for 5 minutes (nothing due): the tick reads
  the GPUs, the leases and the line, probes the quiet-looking leases' Jupyter, writes
  the aggregates and the GPU-day rows and decides that nothing is to be done;
- *warn*: idle for an hour (``warn_after``) and not warned: each waiting request claims
  one idle lease, which is warned (an ``idle_warning`` effect);
- *reclaim*: idle for two hours and warned an hour ago: each waiting request's lease is
  reclaimed (ended through ``LeaseEnder``; the capacity-freed signal kicks the queue's
  worker thread, which grants the waiters outside the measured call, as in serve).

Statements are counted in the measuring thread only (the queue's worker thread runs
its own pass after a reclaim).
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update

from bench.result import Section, Table, Target
from bench.stats import Summary
from bench.ticks import Statements, analyze

TOTAL = 10_000
GPUS = 64
WAITING = 4  # requests in line, each for 1 GPU of any model
HOST = "gpu-host-1"  # build_harness's LeaseConfig.host, FakeInventory's host
TICK_LIMIT_MS = 200.0
KINDS = ("sample", "warn", "reclaim")
BUSY_UTIL = 87  # a non-idle lease's GPU, or 0 with its kernel busy (every other one)


@dataclass(frozen=True)
class Case:
    total: int  # lease rows in the database
    gpus: int  # GPUs, one active lease each
    kinds: tuple[str, ...]
    idle_counts: tuple[int, ...]
    waiting: int = WAITING  # requests in line

    @property
    def label(self) -> str:
        return f"{self.total:,} leases, {self.gpus} GPUs, {self.waiting} waiting"


class ThreadStatements(Statements):
    """bench/ticks.py's counter, counting only statements of the measuring thread."""

    def __init__(self, engine: Any) -> None:
        self.thread = threading.get_ident()
        super().__init__(engine)

    def _before(self, *args: Any) -> None:
        if threading.get_ident() == self.thread:
            super()._before(*args)

    def _after(self, *args: Any) -> None:
        if threading.get_ident() == self.thread:
            super()._after(*args)


# ------------------------------------------------------------------ the data
def populate(db: Any, kit: Any, now: datetime, case: Case) -> dict[int, str]:
    """``case.total`` leases (tests/support/population.py), then: leases 1..gpus active
    on the inventory's GPUs with a password, the next WAITING queued (holding nothing),
    the rest ended an hour ago (released) with no allocations. Returns the password
    tokens of the active ones (a reclaim clears them; the reset puts them back)."""
    from bot.db.tables import gpu_allocations, leases, port_allocations
    from bot.domain.lease import LeaseStatus
    from tests.support.population import populate as bulk_insert

    bulk_insert(db, now, total=case.total, host=HOST,
                expiry=lambda i: now + timedelta(hours=2, minutes=i % (7 * 24 * 60 - 120)))
    gpus = kit.inventory.list_gpus()
    tokens = {i: kit.res.vault.encrypt(f"bench-password-{i}") for i in range(1, case.gpus + 1)}
    with db.transaction() as s:
        s.execute(delete(gpu_allocations))
        s.execute(delete(port_allocations).where(port_allocations.c.lease_id > case.gpus))
        s.execute(update(leases).where(leases.c.id > case.gpus).values(
            status=LeaseStatus.RELEASED, ended_at=now - timedelta(hours=1),
            end_reason="released", password_token=None))
        s.execute(update(leases).where(leases.c.id == bindparam("lid")).values(
            gpu_uuids=bindparam("uuids"), password_token=bindparam("token")),
            [{"lid": i, "uuids": (gpus[i - 1].uuid,), "token": tokens[i]}
             for i in range(1, case.gpus + 1)])
        s.execute(insert(gpu_allocations), [{"gpu_uuid": gpus[i - 1].uuid, "host": HOST,
                                             "lease_id": i, "allocated_at": now}
                                            for i in range(1, case.gpus + 1)])
    analyze(db)
    return tokens


def reset(db: Any, kit: Any, now: datetime, case: Case, tokens: dict[int, str], *,
          kind: str, idle: int) -> None:
    """Every active lease active again with its GPU, port and password; leases 1..idle
    idle since (and warned at) what ``kind`` needs, the others not idle; the WAITING
    requests queued again holding nothing; the audit trail (intents) emptied. The
    inventory and the probe are set to match."""
    from bot.db.tables import audit, gpu_allocations, leases, port_allocations
    from bot.domain.lease import LeaseStatus

    since = {"sample": now - timedelta(minutes=5), "warn": now - timedelta(minutes=61),
             "reclaim": now - timedelta(minutes=121)}[kind]
    warned = now - timedelta(minutes=61) if kind == "reclaim" else None
    gpus = kit.inventory.gpus
    active = range(1, case.gpus + 1)
    waiting = range(case.gpus + 1, case.gpus + case.waiting + 1)
    with db.transaction() as s:
        s.execute(update(leases).where(leases.c.id == bindparam("lid")).values(
            status=LeaseStatus.ACTIVE, ended_at=None, end_reason=None, failure_reason=None,
            password_token=bindparam("token"), idle_since=bindparam("since"),
            idle_warned_at=bindparam("warned"), snoozed_until=None, idle_exempt=False,
            gpu_uuids=bindparam("uuids"), host=HOST),
            [{"lid": i, "token": tokens[i], "since": since if i <= idle else None,
              "warned": warned if i <= idle else None, "uuids": (gpus[i - 1].uuid,)}
             for i in active])
        s.execute(update(leases).where(leases.c.id.in_(list(waiting))).values(
            status=LeaseStatus.QUEUED, host=None, gpu_uuids=(), port=None,
            password_token=None, container_id=None, container_name=None, started_at=None,
            expires_at=None, ended_at=None, end_reason=None, heartbeat_at=None,
            queued_at=now - timedelta(minutes=30)))
        limit = case.gpus + WAITING  # every request any case queues
        for table in (gpu_allocations, port_allocations):
            s.execute(delete(table).where(table.c.lease_id <= limit))
        s.execute(insert(gpu_allocations), [{"gpu_uuid": gpus[i - 1].uuid, "host": HOST,
                                             "lease_id": i, "allocated_at": now}
                                            for i in active])
        s.execute(insert(port_allocations), [{"host": HOST, "port": 20000 + i, "lease_id": i,
                                              "allocated_at": now} for i in active])
        s.execute(delete(audit))
    for i in active:  # idle: 0 % and a quiet Jupyter; else a busy GPU or a busy kernel
        busy_gpu = i > idle and i % 2 == 0
        kit.inventory.set(i - 1, utilization_percent=BUSY_UTIL if busy_gpu else 0,
                          memory_used_bytes=(20 * 2**30) if i > idle else 615 * 2**20)
        kit.probe.set(i, busy=i > idle and not busy_gpu)
    for i in waiting:  # the containers a previous reclaim's grants started
        kit.runtime.stop(i)
    kit.notifier.sent.clear()


def wait_for_queue(db: Any, *, queued: int, timeout: float = 20.0) -> None:
    """After a reclaim: the queue's worker thread has granted and started the waiters
    (none starting, ``queued`` still in line)."""
    from bot.db.tables import leases
    from bot.domain.lease import LeaseStatus

    deadline = time.monotonic() + timeout
    while True:
        with db.transaction() as s:
            counts = dict(s.execute(select(leases.c.status, func.count()).where(
                leases.c.status.in_([LeaseStatus.QUEUED, LeaseStatus.STARTING]))
                .group_by(leases.c.status)).all())
        if counts.get(LeaseStatus.STARTING, 0) == 0 and counts.get(LeaseStatus.QUEUED, 0) \
                == queued:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the queue's pass did not settle: {counts}")
        time.sleep(0.005)


# ------------------------------------------------------------------ measuring
def measure_case(url: str, case: Case, *, reps: int) -> dict[tuple[str, int], list[tuple]]:
    """{(kind, idle count): [(report, seconds, statements, sql s, kinds, gc s), ...]}."""
    from bot.db import migrate
    from bot.db.engine import Database
    from bot.serve import freeze_startup_objects
    from tests.fakes.gpus import FakeInventory
    from tests.fakes.services import build_harness

    migrate.upgrade(url)
    db = Database(url)
    try:
        kit = build_harness(db, inventory=FakeInventory(case.gpus, host=HOST),
                            background=True)  # the queue's pass in its own thread, as serve
        now = kit.clock.now()
        tokens = populate(db, kit, now, case)
        freeze_startup_objects()  # as `gpubot serve` does once it is built
        counter = ThreadStatements(db.engine)
        figures: dict[tuple[str, int], list[tuple]] = {}
        try:
            for kind in case.kinds:
                for idle in case.idle_counts:
                    runs = figures.setdefault((kind, idle), [])
                    acts = min(idle, case.waiting)
                    for _ in range(reps + 1):  # the first is a warm-up, not kept
                        reset(db, kit, now, case, tokens, kind=kind, idle=idle)
                        result = counter.measure(kit.idle.sample)
                        report = result[0]
                        want = (case.gpus, idle, acts if kind == "warn" else 0,
                                acts if kind == "reclaim" else 0)
                        got = (report.sampled, report.idle, report.warned, report.reclaimed)
                        if got != want:
                            raise AssertionError(f"{case.label}, {kind} tick with {idle} idle: "
                                                 f"sampled/idle/warned/reclaimed {got}, want "
                                                 f"{want}")
                        if kind == "reclaim":
                            wait_for_queue(db, queued=case.waiting - acts)
                        runs.append(result)
                    del runs[0]
        finally:
            counter.close()
        return figures
    finally:
        db.dispose()


MAIN = Case(TOTAL, GPUS, KINDS, (1, GPUS))
FEWER_LEASES = Case(TOTAL // 10, GPUS, ("sample",), (1, GPUS))
FEWER_GPUS = Case(TOTAL, GPUS // 8, ("sample",), (1, GPUS // 8))
ONE_WAITING = Case(TOTAL, GPUS, ("warn", "reclaim"), (1, GPUS), waiting=1)
CASES = (MAIN, ONE_WAITING, FEWER_LEASES, FEWER_GPUS)


def _summary(runs: list[tuple]) -> tuple[Summary, Summary, Summary, list[int]]:
    return (Summary.of(r[1] for r in runs).scaled(1000), Summary.of(r[3] for r in runs)
            .scaled(1000), Summary.of(r[5] for r in runs).scaled(1000),
            sorted({r[2] for r in runs}))


def growth_key(backend: str, total: int, gpus: int, field: str) -> str:
    """Where the growth table finds the sample tick with every lease idle."""
    return f"idle:{backend}:{total}:{gpus}:{field}"


def run(*, reps: int, small_reps: int, log: Any = print) -> Section:
    from bench import pg

    results: dict[str, dict[Case, dict[tuple[str, int], list[tuple]]]] = {}
    with ExitStack() as stack:
        server, backends = pg.backends(stack)
        for backend, make in backends.items():
            started = time.monotonic()
            results[backend] = {}
            for n, case in enumerate(CASES):
                results[backend][case] = measure_case(make(f"idle{n}"), case,
                                                      reps=reps if case is MAIN else small_reps)
            log(f"  {backend}: done in {time.monotonic() - started:.1f} s")

    section = Section("idle", "7. Idle sampling tick with 10,000 leases and 64 GPUs", method=(
        f"{TOTAL:,} leases bulk-inserted as in figure 4 (tests/support/population.py), then "
        f"{GPUS} left active, one per GPU of `FakeInventory({GPUS})`, each with an "
        f"encrypted password; {WAITING} queued requests (1 GPU, any model); the rest ended "
        "an hour earlier; statistics gathered (`ANALYZE`). The real graph from "
        "`tests/fakes/services.build_harness` (queue passes in their own thread, as in "
        "serve); Jupyter is `FakeJupyterProbe` (answers at once: the HTTP probes of a real "
        "tick, up to 8 in parallel, are not in these figures), containers "
        "`FakeContainerRuntime`. An idle lease's GPU reads 0 % and its Jupyter is quiet; of "
        f"the others every other one has its GPU at {BUSY_UTIL} %, the rest read 0 % with a "
        "kernel busy (so they are probed too). Before each repetition (not timed) the rows "
        "are put back: *sample* = the idle leases idle for 5 minutes (nothing due), *warn* "
        "= idle for 61 minutes and not warned (each waiting request has one warned), "
        "*reclaim* = idle for 121 minutes and warned 61 minutes ago (each waiting request "
        "has one reclaimed; the queue's worker grants them after the call, outside the "
        "timing, and the bench waits for it before the next reset); defaults "
        "`GPUBOT_IDLE_WARN_AFTER=1h`, `GPUBOT_IDLE_RECLAIM_AFTER=2h`. Time is the wall time "
        "of `IdleService.sample()`; statements are counted as in figure 4 "
        "(`before_cursor_execute`, an executemany counts once), in the calling thread only. "
        f"{reps} repetitions per row at 10,000 leases, 64 GPUs and {WAITING} waiting, "
        f"{small_reps} for the other rows, each row after one untimed warm-up. The same "
        "ticks with 1 request waiting tell whether a warn or reclaim tick's statements "
        "follow the number of idle leases or the number acted on. PostgreSQL: a fresh "
        f"database on the configured server ({server.version}); SQLite: a file in a temp "
        "folder."))
    rows: list[list[str]] = []
    targets: list[Target] = []
    for backend, by_case in results.items():
        for case in (MAIN, ONE_WAITING):
            for kind in case.kinds:
                counts_by_idle = {}
                for idle in case.idle_counts:
                    runs = by_case[case][(kind, idle)]
                    ms, sql, gcs, counts = _summary(runs)
                    counts_by_idle[idle] = counts
                    acts = min(idle, case.waiting) if kind != "sample" else 0
                    rows.append([backend, kind, str(case.waiting), str(idle), str(acts),
                                 str(ms.n), f"{ms.median:.1f}", f"{ms.p95:.1f}", f"{ms.p99:.1f}",
                                 f"{ms.max:.1f}", f"{sql.median:.1f}",
                                 f"{gcs.median:.1f} / {gcs.max:.1f}", "/".join(map(str, counts)),
                                 ", ".join(f"{k} {v}" for k, v in runs[-1][4].items())])
                    if case is MAIN:
                        targets.append(Target(f"idle {kind} tick, {idle} idle ({backend})",
                                              f"p99 ≤ {TICK_LIMIT_MS:.0f} ms",
                                              f"p99 {ms.p99:.1f} ms (median {ms.median:.1f})",
                                              ms.p99 <= TICK_LIMIT_MS))
                one, every = counts_by_idle[1], counts_by_idle[GPUS]
                same = one == every and len(one) == 1
                acts = f"{min(1, case.waiting)} vs {min(GPUS, case.waiting)} acted on"
                target = Target(
                    f"idle {kind} tick statements ({backend}, {case.waiting} waiting)",
                    f"same with 1 and with {GPUS} idle",
                    f"1 idle: {'/'.join(map(str, one))}, {GPUS} idle: "
                    f"{'/'.join(map(str, every))}" + ("" if kind == "sample" else
                                                       f" ({acts})"), same)
                if case is MAIN:
                    targets.append(target)
                else:
                    section.notes.append(f"{target.name}: {target.measured} "
                                         f"({'the same' if same else 'not the same'})")
    section.tables.append(Table(
        f"per tick, {TOTAL:,} leases and {GPUS} GPUs (ms)",
        ["backend", "tick", "waiting", "idle", "warned / reclaimed", "n", "median", "p95",
         "p99", "max", "SQL median", "GC median / max", "statements", "statement kinds"], rows,
        left=2))
    srows = []
    for backend, by_case in results.items():
        for case in (MAIN, FEWER_LEASES, FEWER_GPUS):
            for idle in case.idle_counts:
                ms, _, _, counts = _summary(by_case[case][("sample", idle)])
                srows.append([backend, case.label, str(idle), str(ms.n), f"{ms.median:.1f}",
                              f"{ms.p99:.1f}", "/".join(map(str, counts))])
                if idle == case.gpus:  # every lease idle: the most work per lease
                    for field, value in (("median_ms", ms.median), ("p99_ms", ms.p99),
                                         ("statements", float(counts[-1]))):
                        section.metrics[growth_key(backend, case.total, case.gpus, field)] = value
    section.tables.append(Table("the sample tick at other sizes (ms)", [
        "backend", "database and GPUs", "idle", "n", "median", "p99", "statements"], srows,
        left=3))
    section.targets += targets
    return section
