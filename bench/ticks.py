"""Figure 4: scheduler ticks (expire, remind, reconcile) with 10,000 leases in the
database, 1% due, on SQLite and PostgreSQL: time per tick and SQL statements per tick.

The lifecycle jobs and the reconciler run over the real database with the fakes of tests/fakes
(``FakeContainerRuntime`` listing one container per lease, ``RecordingNotifier``,
``FakeClock``). Before every repetition the due rows are put back (bulk statements,
not timed), so each repetition has exactly the same work."""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, event, insert, text, update

from bench.result import Section, Table, Target
from bench.stats import Summary

TOTAL = 10_000
HOST = "gpu-host-1"
TICK_LIMIT_MS = 200.0
JOBS = ("expire", "expire idle", "remind", "remind idle", "reconcile", "reconcile idle")


def _runtime_class() -> type:
    from bot.ports import ContainerState, ContainerStatus, ManagedContainer
    from tests.fakes.containers import FakeContainerRuntime

    class ListedRuntime(FakeContainerRuntime):
        """An engine listing one container per lease id given to ``show``."""

        def __init__(self) -> None:
            super().__init__()
            self.listed: list[Any] = []
            self.stop_calls = 0

        def show(self, running: range | list[int], exited: range | list[int] = ()) -> None:
            up = ContainerState(ContainerStatus.RUNNING)
            down = ContainerState(ContainerStatus.EXITED, exit_code=137, oom_killed=True)
            self.listed = [ManagedContainer(lease_id=i, user_id=f"U{i:05d}", gpu_uuids=(),
                                            container_id=f"c{i}", name=f"gpubot-{i}",
                                            state=up) for i in running] + [
                ManagedContainer(lease_id=i, user_id=f"U{i:05d}", gpu_uuids=(),
                                 container_id=f"c{i}", name=f"gpubot-{i}", state=down)
                for i in exited]

        def list_managed(self) -> list[Any]:
            return list(self.listed)

        def stop(self, lease_id: int) -> None:
            self.stop_calls += 1

    return ListedRuntime


def _expiry(i: int, due: int, now: datetime) -> datetime:
    from tests.support.population import spread_expiry

    return spread_expiry(i, due=due, now=now)


def populate(db: Any, now: datetime, total: int = TOTAL) -> None:
    """``total`` active leases on HOST, none due, then statistics gathered."""
    from tests.support.population import populate as bulk_insert

    bulk_insert(db, now, total=total, host=HOST, expiry=lambda i: _expiry(i, 0, now))
    analyze(db)


def analyze(db: Any) -> None:
    """Planner statistics after a bulk insert, as a long-running database would have."""
    if not db.is_sqlite:
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    else:
        with db.transaction() as s:
            s.execute(text("ANALYZE"))


def reset(db: Any, now: datetime, due: int, span: int) -> None:
    """Leases 1..span back to active with their allocations, expiry laid out for
    ``due``; the audit trail emptied (so intents/.done rows do not pile up)."""
    from bot.db.tables import audit, gpu_allocations, leases, port_allocations
    from bot.domain.lease import LeaseStatus

    ids = range(1, span + 1)
    with db.transaction() as s:
        s.execute(update(leases).where(leases.c.id <= span).values(
            status=LeaseStatus.ACTIVE, ended_at=None, failure_reason=None, reminders_sent=""))
        s.execute(update(leases).where(leases.c.id == bindparam("lid")).values(
            expires_at=bindparam("exp")), [{"lid": i, "exp": _expiry(i, due, now)} for i in ids])
        for table in (gpu_allocations, port_allocations):
            s.execute(delete(table).where(table.c.lease_id <= span))
        s.execute(insert(gpu_allocations), [{"gpu_uuid": f"GPU-bench-{i:05d}", "host": HOST,
                                                 "lease_id": i, "allocated_at": now} for i in ids])
        s.execute(insert(port_allocations), [{"host": HOST, "port": 20000 + i, "lease_id": i,
                                                  "allocated_at": now} for i in ids])
        s.execute(delete(audit))


class Statements:
    """SQL statements (``before_cursor_execute``; an executemany counts once), the time
    spent in them and in the garbage collector, per measured call."""

    def __init__(self, engine: Any) -> None:
        self.kinds: Counter[str] = Counter()
        self.sql_s = 0.0
        self.gc_s = 0.0
        self._t = 0.0
        self._gc_t = 0.0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_t = time.perf_counter()
        else:
            self.gc_s += time.perf_counter() - self._gc_t

    def close(self) -> None:
        gc.callbacks.remove(self._gc)

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any,
                executemany: bool) -> None:
        self.kinds[statement.split(None, 1)[0].upper() + (" (many)" if executemany else "")] += 1
        self._t = time.perf_counter()

    def _after(self, *args: Any) -> None:
        self.sql_s += time.perf_counter() - self._t

    def measure(self, job: Callable[[], Any]) -> tuple[Any, float, int, float, dict[str, int],
                                                        float]:
        self.kinds.clear()
        self.sql_s = self.gc_s = 0.0
        started = time.perf_counter()
        result = job()
        elapsed = time.perf_counter() - started
        return result, elapsed, sum(self.kinds.values()), self.sql_s, dict(sorted(
            self.kinds.items())), self.gc_s


def _count(result: Any) -> int:
    return int(result) if isinstance(result, int) else int(getattr(result, "died", 0))


def measure_backend(url: str, *, due: int, reps: int, span: int) -> dict[str, list[tuple]]:
    from bot.db import migrate
    from bot.db.engine import Database
    from bot.serve import freeze_startup_objects
    from tests.fakes.services import build_harness

    migrate.upgrade(url)
    db = Database(url)
    try:
        runtime = _runtime_class()()
        kit = build_harness(db, runtime=runtime)
        now = kit.clock.now()
        populate(db, now)
        lc = kit.lifecycle
        freeze_startup_objects()  # as `gpubot serve` does once it is built
        counter = Statements(db.engine)
        figures: dict[str, list[tuple]] = {job: [] for job in JOBS}
        dead = range(2 * due + 1, 3 * due + 1)
        alive = [i for i in range(due + 1, TOTAL + 1) if i not in dead]
        for _ in range(reps):
            reset(db, now, due, span)
            kit.notifier.sent.clear()
            figures["expire"].append(counter.measure(lc.expire))
            figures["expire idle"].append(counter.measure(lc.expire))
            figures["remind"].append(counter.measure(lc.remind))
            figures["remind idle"].append(counter.measure(lc.remind))
            runtime.show(alive, dead)  # the expired ones' containers are gone
            figures["reconcile"].append(counter.measure(kit.reconciler.run))
            runtime.show(alive)
            figures["reconcile idle"].append(counter.measure(kit.reconciler.run))
            done = {job: _count(figures[job][-1][0]) for job in JOBS}
            want = {"expire": due, "remind": due, "reconcile": due}
            if any(done[j] != want.get(j, 0) for j in JOBS):
                raise AssertionError(f"unexpected work done per tick: {done} (want {want})")
            report = figures["reconcile"][-1][0]
            if report.failed_steps or report.orphans_stopped:
                raise AssertionError(f"reconcile: {report}")
        counter.close()
        return figures
    finally:
        db.dispose()


def run(*, reps: int, small_reps: int, log: Any = print) -> Section:
    from bench import pg

    due = TOTAL // 100
    small = TOTAL // 1000
    span = 3 * due
    results: dict[str, dict[str, dict[str, list[tuple]]]] = {}
    with ExitStack() as stack:
        server, backends = pg.backends(stack)
        for backend, make in backends.items():
            started = time.monotonic()
            results[backend] = {
                "1%": measure_backend(make("one"), due=due, reps=reps, span=span),
                "0.1%": measure_backend(make("tenth"), due=small, reps=small_reps, span=span)}
            log(f"  {backend}: done in {time.monotonic() - started:.1f} s")

    section = Section("ticks", "4. Scheduler ticks with 10,000 leases", method=(
        f"{TOTAL:,} active leases bulk-inserted (users, leases, GPU and port allocation "
        f"rows), then statistics gathered (`ANALYZE`). Per repetition ({reps}× at 1% due, "
        f"{small_reps}× at 0.1% due): the due rows are reset (not timed), then "
        "`LifecycleJobs.expire()` (1% past their end), `expire()` again with nothing "
        "due, `remind()` (1% with 5 minutes left), `remind()` idle, `reconcile()` with the "
        "engine listing 10,000 minus the expired containers of which 1% exited (OOM), and "
        "`reconcile()` idle. Time is the wall time of the call in this process; *SQL* is "
        "the part spent inside `cursor.execute`; statements are counted with SQLAlchemy's "
        "`before_cursor_execute` (an executemany counts once); *GC* is the time in Python's cyclic garbage collector during the call (`gc.callbacks`); "
        "after its setup the process freezes what start-up made (`gc.freeze()`), as "
        "`gpubot serve` does once it is built. Fakes: FakeContainerRuntime "
        "(listing), RecordingNotifier, FakeClock. PostgreSQL: a fresh database on the "
        f"configured server ({server.version}); SQLite: a file in a temp folder."))
    rows = []
    targets = []
    constant: list[bool] = []
    shown: list[str] = []
    for backend, by_due in results.items():
        for job in JOBS:
            runs = by_due["1%"][job]
            ms = Summary.of(r[1] for r in runs).scaled(1000)
            sql = Summary.of(r[3] for r in runs).scaled(1000)
            gcs = Summary.of(r[5] for r in runs).scaled(1000)
            counts = sorted({r[2] for r in runs})
            small_counts = sorted({r[2] for r in by_due["0.1%"][job]})
            kinds = runs[-1][4]
            rows.append([backend, job, str(ms.n), f"{ms.median:.1f}", f"{ms.p95:.1f}",
                         f"{ms.p99:.1f}", f"{ms.max:.1f}", f"{sql.median:.1f}",
                         f"{gcs.median:.1f} / {gcs.max:.1f}",
                         "/".join(map(str, counts)), "/".join(map(str, small_counts)),
                         ", ".join(f"{k} {v}" for k, v in kinds.items())])
            if not job.endswith("idle"):
                targets.append(Target(f"{job} tick ({backend})", f"p99 ≤ {TICK_LIMIT_MS:.0f} ms",
                                      f"p99 {ms.p99:.1f} ms (median {ms.median:.1f})",
                                      ms.p99 <= TICK_LIMIT_MS))
            constant.append(counts == small_counts and len(counts) == 1)
            shown.append(f"{job} {'/'.join(map(str, counts))}")
        targets.append(Target(f"statements per tick ({backend})",
                              "constant: same at 1% and 0.1% due (no N+1)",
                              ", ".join(shown), all(constant)))
        constant, shown = [], []
    section.tables.append(Table("per tick (ms; statements at 1% due vs 0.1% due)", [
        "backend", "job", "n", "median", "p95", "p99", "max", "SQL median",
        "GC median / max",
        "statements 1%", "statements 0.1%", "statement kinds (1%)"], rows, left=2))
    section.targets += targets
    return section
