"""The real object graph (``bot.bootstrap.build``) over hand-written fakes, for tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from bot.bootstrap import Gpubot, build
from bot.db.engine import Database
from bot.domain.policy import Policy
from bot.security import Vault
from bot.services.approvals import ApprovalService
from bot.services.claim import ClaimService
from bot.services.leases import LeaseCommands
from bot.services.idle import IdleService
from bot.services.lifecycle import LifecycleJobs
from bot.services.queue import QueueService
from bot.services.reconcile import Reconciler
from bot.services.resources import LeaseConfig, Resources
from bot.settings import Settings
from tests.fakes.clock import FakeClock
from tests.fakes.gpus import FakeInventory
from tests.fakes.jupyter import FakeJupyterProbe
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
class Harness:
    """The graph and the fakes it runs on, by name."""

    gpubot: Gpubot
    clock: FakeClock
    notifier: Any
    inventory: Any
    runtime: Any
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def res(self) -> Resources:
        return self.gpubot.resources

    @property
    def claims(self) -> ClaimService:
        return self.gpubot.use_cases.claims

    @property
    def leases(self) -> LeaseCommands:
        return self.gpubot.use_cases.leases

    @property
    def approvals(self) -> ApprovalService:
        return self.gpubot.use_cases.approvals

    @property
    def queue(self) -> QueueService:
        return self.gpubot.use_cases.queue

    @property
    def idle(self) -> IdleService:
        return self.gpubot.use_cases.idle

    @property
    def probe(self) -> Any:
        return self.gpubot.use_cases.idle.probe

    @property
    def lifecycle(self) -> LifecycleJobs:
        return self.gpubot.lifecycle

    @property
    def reconciler(self) -> Reconciler:
        return self.gpubot.reconciler


def build_harness(db: Database, *, inventory: Any = None, runtime: Any = None,
                  clock: FakeClock | None = None, policy: Policy | None = None,
                  workspace_root: Path = Path("/tmp/gpubot-ws"),
                  port_range: tuple[int, int] = (8800, 8899), notifier: Any = None,
                  settings: Settings | None = None, background: bool = False,
                  probe: Any = None, proxy: Any = None, host: str = "gpu-host-1",
                  public_host: str = "gpu.lab.example", **config: Any) -> Harness:
    """``config``: more LeaseConfig fields (timeouts, batch_size, …). Queue passes run in
    the thread that freed the capacity unless ``background``."""
    if runtime is None:
        from tests.fakes.containers import FakeContainerRuntime

        runtime = FakeContainerRuntime()
    inventory = inventory or FakeInventory()
    clock = clock or FakeClock()
    notifier = notifier or RecordingNotifier()
    gpubot = build(settings or Settings(), notifier=notifier, db=db, inventory=inventory,
                   runtime=runtime, clock=clock, vault=Vault([TEST_KEY]), background=background,
                   probe=probe or FakeJupyterProbe(),
                   proxy=proxy,
                   policy=policy or make_policy(),
                   config=LeaseConfig(host=host, port_range=port_range,
                                      public_host=public_host,
                                      workspace_root=workspace_root, **config))
    return Harness(gpubot, clock, notifier, inventory, runtime)
