"""No double allocation under fire: many simultaneous claims, each thread with its own
database connection (its own engine), against 4 GPUs. The database must refuse every
second holder of a GPU or port, on SQLite and on PostgreSQL."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest

from bot.db import migrate
from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.domain.errors import LeaseLimitReached, NoGpuFree
from bot.domain.lease import LeaseStatus
from tests.fakes.gpus import FakeInventory
from tests.fakes.services import build_harness

CLAIMS = 60
GPUS = 4


def _fire(url: str, users: list[str], *, inventory: FakeInventory) -> dict[str, object]:
    barrier = threading.Barrier(len(users))
    results: list[tuple[str, float, str]] = []
    lock = threading.Lock()

    def one(user: str) -> None:
        try:
            db = Database(url, pool_size=1, max_overflow=0) if "postgresql" in url \
                else Database(url)
            kit = build_harness(db, inventory=inventory, runtime=object())
        except Exception as exc:  # the others must not wait for this thread forever
            barrier.abort()
            with lock:
                results.append((user, 0.0, f"error:setup: {exc!r}"))
            return
        try:
            try:
                barrier.wait(timeout=60)
            except threading.BrokenBarrierError:
                with lock:
                    results.append((user, 0.0, "error:another thread failed to set up"))
                return
            started = time.perf_counter()
            try:
                lease = kit.claims.claim(user_id=user, duration=timedelta(hours=24))
                outcome = f"{'queued' if lease.status is LeaseStatus.QUEUED else 'granted'}:" \
                          f"{lease.id}"
            except NoGpuFree as exc:
                outcome = "no_gpu:" + exc.message
            except LeaseLimitReached:
                outcome = "limit"
            except Exception as exc:  # noqa: BLE001 - counted and shown, never swallowed
                outcome = f"error:{type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - started
            with lock:
                results.append((user, elapsed, outcome))
        finally:
            db.dispose()

    threads = [threading.Thread(target=one, args=(u,)) for u in users]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    wall = time.perf_counter() - wall
    return {"results": results, "wall": wall}


def _live_allocations(url: str) -> tuple[list[str], list[int], int]:
    db = Database(url)
    try:
        with db.transaction() as s:
            live = LeaseRepo(s).live()
            gpus = [u for lease in live for u in lease.gpu_uuids]
            ports = [lease.port for lease in live]
            return gpus, ports, len(live)  # type: ignore[return-value]
    finally:
        db.dispose()


def test_concurrent_claims_never_double_book(db_url: str) -> None:
    migrate.upgrade(db_url)
    run = _fire(db_url, [f"U{i:04d}" for i in range(CLAIMS)], inventory=FakeInventory(GPUS))
    results = run["results"]
    assert len(results) == CLAIMS, "a claim thread hung"
    outcomes = Counter(r[2].split(":")[0] for r in results)
    gpus, ports, live = _live_allocations(db_url)
    dup_gpus = sum(c - 1 for c in Counter(gpus).values())
    dup_ports = sum(c - 1 for c in Counter(ports).values())
    latencies = sorted(r[1] for r in results)
    backend = db_url.split(":")[0]
    print(f"\n[concurrency] {backend}: fired={CLAIMS} granted={outcomes['granted']} "
          f"queued={outcomes['queued']} other={CLAIMS - outcomes['granted'] - outcomes['queued']} "
          f"duplicate_gpus={dup_gpus} duplicate_ports={dup_ports} wall={run['wall']:.2f}s "
          f"median={statistics.median(latencies) * 1000:.0f}ms slowest={latencies[-1] * 1000:.0f}ms")
    # a full server queues: every claim is answered, none is refused, GPUS hold a GPU
    assert outcomes["granted"] + outcomes["queued"] == CLAIMS
    assert outcomes["queued"] >= CLAIMS - GPUS
    assert live == GPUS and dup_gpus == 0 and dup_ports == 0
    assert len(set(gpus)) == GPUS


def test_one_users_concurrent_claims_respect_the_limit(db_url: str) -> None:
    """Ten simultaneous claims by one person with a limit of 2: exactly 2 granted."""
    migrate.upgrade(db_url)
    run = _fire(db_url, ["USAME"] * 10, inventory=FakeInventory(8))
    outcomes = Counter(r[2].split(":")[0] for r in run["results"])
    assert outcomes == {"granted": 2, "limit": 8}


def test_the_database_alone_refuses_a_second_holder(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blind Python: every grant believes no GPU and no port is taken. The allocation
    rows' keys must still let exactly one claim hold each GPU and port."""
    monkeypatch.setattr(LeaseRepo, "taken_gpus", lambda self: set())
    monkeypatch.setattr(LeaseRepo, "taken_ports", lambda self, host: set())
    monkeypatch.setattr(LeaseRepo, "serialize_grants", lambda self, host: None)  # real races
    migrate.upgrade(db_url)
    run = _fire(db_url, [f"U{i:04d}" for i in range(20)], inventory=FakeInventory(GPUS))
    outcomes = Counter(r[2].split(":")[0] for r in run["results"])
    gpus, ports, live = _live_allocations(db_url)
    assert not [r[2] for r in run["results"] if r[2].startswith("error")]
    assert outcomes["granted"] + outcomes["queued"] == 20 and live == GPUS
    assert len(set(gpus)) == len(gpus) == GPUS and len(set(ports)) == len(ports) == GPUS
