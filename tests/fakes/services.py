"""Assemble the real services over fakes (or real adapters) for tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from bot.db.engine import Database
from bot.domain.policy import Policy
from bot.security import Vault
from bot.services.claim import ClaimService
from bot.services.deps import Deps, LeaseConfig
from bot.services.manage import ManageService
from tests.fakes.clock import FakeClock
from tests.fakes.gpus import FakeInventory
from tests.fakes.notifier import RecordingNotifier

TEST_KEY = Fernet.generate_key().decode()


def make_policy(**overrides: Any) -> Policy:
    values: dict[str, Any] = dict(min_lease=timedelta(minutes=15), max_lease=timedelta(days=7),
                                  default_lease=timedelta(hours=24),
                                  approval_above=timedelta(days=3), max_leases_per_user=2,
                                  admins=frozenset({"UADMIN1", "UADMIN2"}))
    values.update(overrides)
    return Policy(**values)


@dataclass
class Kit:
    deps: Deps
    claims: ClaimService
    manage: ManageService
    clock: FakeClock
    notifier: RecordingNotifier
    inventory: Any
    runtime: Any
    extra: dict[str, Any] = field(default_factory=dict)


def build(db: Database, *, inventory: Any = None, runtime: Any = None, clock: FakeClock | None = None,
          policy: Policy | None = None, workspace_root: Path = Path("/tmp/gpubot-ws"),
          port_range: tuple[int, int] = (8800, 8899), notifier: Any = None,
          **config: Any) -> Kit:
    if runtime is None:
        from tests.fakes.containers import FakeContainerRuntime

        runtime = FakeContainerRuntime()
    inventory = inventory or FakeInventory()
    clock = clock or FakeClock()
    notifier = notifier or RecordingNotifier()
    deps = Deps(db=db, inventory=inventory, runtime=runtime, notifier=notifier, clock=clock,
                vault=Vault([TEST_KEY]), policy=policy or make_policy(),
                config=LeaseConfig(host="gpu-host-1", port_range=port_range,
                                   public_host="gpu.lab.example", workspace_root=workspace_root,
                                   **config))
    claims = ClaimService(deps)
    return Kit(deps, claims, ManageService(deps, claims), clock, notifier, inventory, runtime)
