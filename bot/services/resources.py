"""What the services are built from; assembled once, in ``bot.bootstrap``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bot.db.engine import Database
from bot.domain.environments import Environment
from bot.domain.idle import IdleRules
from bot.domain.lease import Lease
from bot.domain.policy import Policy
from bot.ports import Clock, ContainerRuntime, GpuInventory, ImageInspector, Notifier, Proxy
from bot.security import Vault


@dataclass(frozen=True)
class LeaseConfig:
    host: str
    port_range: tuple[int, int]
    public_host: str
    workspace_root: Path
    busy_memory_bytes: int = 1024**3
    uid_range: tuple[int, int] = (200000, 209999)  # one host uid per person
    ready_timeout: timedelta = timedelta(minutes=3)
    remind_before: tuple[timedelta, ...] = (timedelta(hours=1), timedelta(minutes=10))
    approval_timeout: timedelta = timedelta(hours=24)
    extend_by: timedelta = timedelta(hours=24)
    starting_grace: timedelta = timedelta(minutes=10)  # added to ready_timeout: a start
    #                                                   older than both is stuck
    effect_retry_after: timedelta = timedelta(minutes=10)  # an unacknowledged effect is
    effect_horizon: timedelta = timedelta(hours=24)  # redone after this, until this
    batch_size: int = 200  # leases claimed per sweep transaction
    start_heartbeat: timedelta = timedelta(seconds=30)  # a running start says so this often
    queue_timeout: timedelta = timedelta(hours=24)  # a request waits in line this long at most
    queue_reserve_after: timedelta = timedelta(hours=1)  # a large request then reserves a host
    idle: IdleRules = IdleRules(util_percent=5, warn_after=timedelta(hours=1),
                                reclaim_after=timedelta(hours=2), snooze=timedelta(hours=2))

    @property
    def start_patience(self) -> timedelta:
        return self.ready_timeout + self.starting_grace

    # Access (issue 13): the images offered (first: the default), and with a proxy the
    # domain each lease gets a host under and the port the proxy serves HTTPS on.
    environments: tuple[Environment, ...] = ()
    proxy_domain: str | None = None
    proxy_port: int = 443
    ssh: bool = False  # GPUBOT_SSH: each lease also gets an SSH port (bot/services/keys.py)

    def url(self, lease: Lease) -> str:
        if self.proxy_domain and lease.route_label:  # HTTPS through the proxy, a host each
            shown = "" if self.proxy_port == 443 else f":{self.proxy_port}"
            return f"https://{lease.route_label}.{self.proxy_domain}{shown}/lab"
        return f"http://{lease.address or self.public_host}:{lease.port or 0}/lab"

    def workspace(self, user_id: str) -> Path:
        return self.workspace_root / user_id


@dataclass(frozen=True)
class Resources:
    db: Database
    inventory: GpuInventory
    runtime: ContainerRuntime
    notifier: Notifier
    clock: Clock
    vault: Vault
    policy: Policy
    config: LeaseConfig
    proxy: Proxy | None = None  # GPUBOT_PROXY=caddy: routes per lease (bot/services/routes.py)
    images: ImageInspector | None = None  # what each environment's image declares
