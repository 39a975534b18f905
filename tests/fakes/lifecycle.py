"""The lifecycle jobs and the reconciler over fakes, shared by the lifecycle unit tests: a
runtime that counts its stop calls and can be made to fail, and ``Env``, a harness with
helpers."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.db.tables import audit
from bot.domain.lease import Lease
from bot.ports import ContainerSpec
from bot.security import hash_jupyter_password
from bot.services.lifecycle import LifecycleJobs
from bot.services.reconcile import ReconcileReport
from bot.services.resources import LeaseConfig
from tests.fakes.containers import FakeContainerRuntime
from tests.fakes.gpus import FakeInventory
from tests.fakes.services import Harness, build_harness

H = timedelta(hours=1)


class CountingRuntime(FakeContainerRuntime):
    """The fake runtime, counting every stop call (even of a gone container). Stopping a
    lease id in ``broken`` fails; ``listing_fails`` makes list_managed fail."""

    def __init__(self) -> None:
        super().__init__()
        self.stop_calls: Counter[int] = Counter()
        self.broken: set[int] = set()
        self.listing_fails = False
        self._lock = threading.Lock()

    def stop(self, lease_id: int) -> None:
        with self._lock:
            self.stop_calls[lease_id] += 1
        if lease_id in self.broken:
            raise RuntimeError("engine hiccup")
        super().stop(lease_id)

    def list_managed(self) -> list:  # type: ignore[type-arg]
        if self.listing_fails:
            raise ConnectionError("Cannot connect to the Docker daemon")
        return super().list_managed()


@dataclass
class Env:
    kit: Harness

    @property
    def lc(self) -> LifecycleJobs:
        return self.kit.lifecycle

    @property
    def config(self) -> LeaseConfig:
        return self.kit.res.config

    def reconcile(self) -> ReconcileReport:
        return self.kit.reconciler.run()

    def active(self, user: str, duration: timedelta = 3 * H) -> Lease:
        lease = self.kit.claims.claim(user_id=user, duration=duration)
        return self.kit.claims.start(lease.id or 0)

    def lease(self, lease_id: int | None) -> Lease:
        with self.kit.res.db.transaction() as session:
            return LeaseRepo(session).get(lease_id or 0)

    def actions(self, lease_id: int | None) -> list[str]:
        with self.kit.res.db.transaction() as session:
            return list(session.scalars(select(audit.c.action).where(
                audit.c.lease_id == lease_id).order_by(audit.c.id)))

    def sent(self, kind: str) -> list[int]:
        return [s.lease_id or 0 for s in self.kit.notifier.of(kind)]

    def allocations(self) -> tuple[int, int]:
        with self.kit.res.db.transaction() as session:
            return LeaseRepo(session).allocation_counts()

    def start_container_only(self, lease: Lease) -> None:
        """What a claim does before the bot is SIGKILLed: the container runs, the
        lease is still ``starting`` (nothing recorded)."""
        self.kit.runtime.start(ContainerSpec(
            lease_id=lease.id or 0, user_id=lease.user_id, gpu_uuids=lease.gpu_uuids,
            port=lease.port or 0, password_hash=hash_jupyter_password("x")))


def make_env(db: Database, **options: Any) -> Env:
    """A harness over a CountingRuntime and 8 fake GPUs (``options``: more
    ``build_harness`` options, LeaseConfig fields included)."""
    return Env(build_harness(db, runtime=CountingRuntime(), inventory=FakeInventory(8),
                             **options))
