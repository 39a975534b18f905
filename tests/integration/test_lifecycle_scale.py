"""Lifecycle ticks at scale: 10,000 active leases, 1% due, on SQLite and PostgreSQL.

Prints the time per tick and the SQL statements each tick sends (counted with
SQLAlchemy's ``before_cursor_execute``; an executemany counts once). The statement
count must not grow with the number of due leases (no N+1): it is asserted to stay
the same when 10 times fewer leases are due. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from bot.db import migrate
from bot.db.engine import Database
from bot.ports import ContainerState, ContainerStatus, ManagedContainer
from tests.fakes.containers import FakeContainerRuntime
from tests.fakes.services import build_harness
from tests.support import population

TOTAL = 10_000
HOST = "gpu-host-1"


class ListedRuntime(FakeContainerRuntime):
    """An engine that lists one running container per lease (10,000 of them)."""

    def __init__(self, lease_ids: range) -> None:
        super().__init__()
        running = ContainerState(ContainerStatus.RUNNING)
        self.listed = [ManagedContainer(lease_id=i, user_id=f"U{i:05d}", gpu_uuids=(),
                                        container_id=f"c{i}", name=f"gpubot-{i}", state=running)
                       for i in lease_ids]
        self.stop_calls = 0

    def list_managed(self) -> list[ManagedContainer]:
        return list(self.listed)

    def stop(self, lease_id: int) -> None:
        self.stop_calls += 1


def populate(db: Database, now: Any, *, due: int) -> None:
    population.populate(db, now, total=TOTAL, host=HOST,
                        expiry=lambda i: population.spread_expiry(i, due=due, now=now))


class Statements:
    def __init__(self, db: Database) -> None:
        self.kinds: Counter[str] = Counter()
        event.listen(db.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any,
              executemany: bool) -> None:
        self.kinds[statement.split(None, 1)[0].upper() + (" (many)" if executemany else "")] += 1

    def measure(self, job: Callable[[], Any]) -> tuple[Any, float, int, dict[str, int]]:
        self.kinds.clear()
        started = time.perf_counter()
        result = job()
        elapsed = time.perf_counter() - started
        return result, elapsed, sum(self.kinds.values()), dict(sorted(self.kinds.items()))


def run_ticks(url: str, due: int) -> dict[str, tuple[Any, float, int, dict[str, int]]]:
    migrate.upgrade(url)
    db = Database(url)
    try:
        runtime = ListedRuntime(range(1, TOTAL + 1))
        kit = build_harness(db, runtime=runtime)
        populate(db, kit.clock.now(), due=due)
        lc = kit.lifecycle
        counter = Statements(db)
        figures = {"expire": counter.measure(lc.expire), "expire idle": counter.measure(lc.expire),
                   "remind": counter.measure(lc.remind), "remind idle": counter.measure(lc.remind)}
        runtime.listed = [c for c in runtime.listed if c.lease_id > due]  # expired ones gone
        figures["reconcile"] = counter.measure(kit.reconciler.run)
        assert figures["expire"][0] == due and figures["remind"][0] == due
        assert figures["expire idle"][0] == 0 and figures["remind idle"][0] == 0
        assert len(kit.notifier.of("expired")) == due == len(kit.notifier.of("reminder"))
        assert runtime.stop_calls == due
        report = figures["reconcile"][0]
        assert (report.died, report.orphans_stopped, report.failed_steps) == (0, 0, [])
        return figures
    finally:
        db.dispose()


@pytest.mark.timeout(600)
def test_ticks_with_10000_leases_send_a_constant_number_of_statements(
        db_url: str, tmp_path: Path) -> None:
    backend = db_url.split(":")[0].split("+")[0]
    one_percent = run_ticks(db_url, due=TOTAL // 100)
    second = (f"sqlite:///{tmp_path}/second.db" if backend == "sqlite"
              else db_url.rsplit("/", 1)[0] + "/" + _fresh_pg(db_url))
    tenth = run_ticks(second, due=10)
    print(f"\n[lifecycle scale] {backend}, {TOTAL} active leases")
    for name, (_, seconds, count, kinds) in one_percent.items():
        print(f"  {name:12s} 1% due: {seconds * 1000:7.1f} ms, {count:2d} statements {kinds}")
    for name in ("expire", "remind"):
        _, seconds, count, _ = tenth[name]
        print(f"  {name:12s} 0.1% due: {seconds * 1000:7.1f} ms, {count:2d} statements")
        assert one_percent[name][2] == count, "statements grow with the number of due leases"
        assert count <= 12
    assert one_percent["reconcile"][2] <= 25


def _fresh_pg(url: str) -> str:
    """A second empty PostgreSQL database beside the fixture's (dropped at exit)."""
    import atexit
    import uuid

    import psycopg

    admin = url.rsplit("/", 1)[0].replace("+psycopg", "") + "/postgres"
    name = f"gpubot_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    atexit.register(drop)
    return name
