"""Composition root: the one place that reads settings and wires adapters to services."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.db import migrate
from bot.db.engine import Database
from bot.domain.policy import Policy
from bot.domain.sizes import parse_size
from bot.ports import ContainerRuntime, GpuInventory, Notifier
from bot.security import Vault, load_or_create_key_file
from bot.services.claim import ClaimService
from bot.services.deps import Deps, LeaseConfig
from bot.services.manage import ManageService
from bot.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything handlers, jobs and the CLI call."""

    settings: Settings
    deps: Deps
    claims: ClaimService
    manage: ManageService

    @property
    def db(self) -> Database:
        return self.deps.db


def key_file_path(settings: Settings) -> Path:
    """Explicit GPUBOT_KEY_FILE, else next to the SQLite database, else the working
    directory."""
    if settings.key_file:
        return settings.key_file
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).resolve().with_name("gpubot.key")
    return Path("gpubot.key").resolve()


def make_vault(settings: Settings) -> Vault:
    keys = list(settings.secret_key) or load_or_create_key_file(key_file_path(settings))
    return Vault(keys)


def make_policy(settings: Settings) -> Policy:
    return Policy(min_lease=settings.min_lease, max_lease=settings.max_lease,
                  default_lease=settings.default_lease, approval_above=settings.approval_above,
                  max_leases_per_user=settings.max_leases_per_user,
                  admins=frozenset(settings.admins))


def make_config(settings: Settings) -> LeaseConfig:
    return LeaseConfig(host=settings.host_name, port_range=settings.ports,
                       public_host=settings.public_host, workspace_root=settings.workspace_root,
                       busy_memory_bytes=settings.gpu_busy_memory_mib * 1024**2,
                       ready_timeout=settings.ready_timeout,
                       remind_before=settings.remind_before,
                       approval_timeout=settings.approval_timeout,
                       extend_by=settings.default_lease)


def make_inventory(settings: Settings) -> GpuInventory:
    if settings.fake_gpus:
        from bot.adapters.fake_gpus import SyntheticInventory

        return SyntheticInventory(settings.fake_gpus, host=settings.host_name)
    from bot.adapters.nvml import NvmlInventory

    return NvmlInventory(host=settings.host_name)


def make_runtime(settings: Settings) -> ContainerRuntime:
    from bot.adapters.docker import DockerRuntime, DockerRuntimeConfig

    parse_size(settings.mem_limit)
    return DockerRuntime(DockerRuntimeConfig(
        image=settings.image, workspace_root=settings.workspace_root,
        bind_address=settings.bind_address, mem_limit=settings.mem_limit, cpus=settings.cpus,
        shm_size=settings.shm_size, pids_limit=settings.pids_limit,
        gpu_request=not settings.fake_gpus, pull_missing=settings.pull_missing_image,
        host=settings.host_name, ready_poll_interval=0.05))


def build_services(settings: Settings, *, notifier: Notifier, clock: object | None = None,
                   inventory: GpuInventory | None = None,
                   runtime: ContainerRuntime | None = None,
                   db: Database | None = None, vault: Vault | None = None) -> Services:
    from bot.adapters.clock import SystemClock

    deps = Deps(db=db or Database(settings.database_url),
                inventory=inventory or make_inventory(settings),
                runtime=runtime or make_runtime(settings), notifier=notifier,
                clock=clock or SystemClock(),  # type: ignore[arg-type]
                vault=vault or make_vault(settings), policy=make_policy(settings),
                config=make_config(settings))
    claims = ClaimService(deps)
    return Services(settings=settings, deps=deps, claims=claims,
                    manage=ManageService(deps, claims))


def upgrade_database(settings: Settings) -> None:
    migrate.upgrade(settings.database_url)
