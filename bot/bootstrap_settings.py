"""The adapters and parts the composition root builds from settings (``bot.bootstrap``
re-exports them): the vault and its key file, the policy, the lease configuration, the GPU
inventory and the engine (Docker, or Slurm)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from bot.bootstrap_access import proxy_port, published_on
from bot.domain.idle import IdleRules
from bot.domain.policy import Policy
from bot.domain.sizes import parse_size
from bot.ports import ContainerRuntime, GpuInventory
from bot.security import SecretKeyError, Vault, load_or_create_key_file
from bot.services.resources import LeaseConfig
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.adapters.slurm_rest import SlurmRest


class StartupError(Exception):
    """The bot cannot start; ``str()`` says why and what to do, in one line."""


def engine_unreachable(exc: Exception, engine: str = "docker") -> StartupError:
    """The one line `serve` and the console say when the engine cannot be reached."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if engine == "slurm":
        return StartupError(f"Cannot set up the Slurm engine: {reason}. Check GPUBOT_SLURM_*; "
                            f"`gpubot doctor` checks.")
    return StartupError(f"Cannot reach Docker: {reason}. Is dockerd running and may this "
                        f"user use it? `gpubot doctor` checks.")


# ------------------------------------------------------------ from settings
def key_file_path(settings: Settings) -> Path:
    """Explicit GPUBOT_KEY_FILE, else next to the SQLite database file. With any other
    database there is no fixed place (the working directory is wherever the bot was
    started: a second key would be made there, and old passwords lost), so it is
    refused."""
    if settings.key_file:
        return settings.key_file
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).resolve().with_name("gpubot.key")
    raise StartupError("DATABASE_URL is not a SQLite file, so the secret key has no place of "
                       "its own: set GPUBOT_SECRET_KEY (Fernet keys, newest first) or "
                       "GPUBOT_KEY_FILE (a file only the bot's user may read; made if "
                       "missing)")


def make_vault(settings: Settings) -> Vault:
    try:
        return Vault(list(settings.secret_key)
                     or load_or_create_key_file(key_file_path(settings)))
    except SecretKeyError as exc:  # one line at start-up, not a traceback
        raise StartupError(str(exc)) from None


def make_policy(settings: Settings) -> Policy:
    return Policy(min_lease=settings.min_lease, max_lease=settings.max_lease,
                  default_lease=settings.default_lease, approval_above=settings.approval_above,
                  max_leases_per_user=settings.max_leases_per_user,
                  admins=frozenset(settings.admins))


def make_config(settings: Settings) -> LeaseConfig:
    return LeaseConfig(host=settings.host_name, port_range=settings.ports,
                       uid_range=settings.uids,
                       public_host=settings.public_host, workspace_root=settings.workspace_root,
                       busy_memory_bytes=settings.gpu_busy_memory_mib * 1024**2,
                       ready_timeout=settings.ready_timeout,
                       remind_before=settings.remind_before,
                       approval_timeout=settings.approval_timeout,
                       extend_by=settings.default_lease,
                       starting_grace=settings.starting_grace,
                       effect_retry_after=settings.effect_retry_after,
                       queue_timeout=settings.queue_timeout,
                       queue_reserve_after=settings.queue_reserve_after,
                       idle=IdleRules(util_percent=settings.idle_util_percent,
                                      warn_after=settings.idle_warn_after,
                                      reclaim_after=settings.idle_reclaim_after,
                                      snooze=settings.idle_snooze),
                       environments=settings.environments, proxy_domain=settings.domain,
                       proxy_port=proxy_port(settings), ssh=settings.ssh)


def make_inventory(settings: Settings) -> GpuInventory:
    if settings.engine == "slurm":  # the partition's GPUs, whatever this host has
        from bot.adapters.slurm_inventory import SlurmInventory

        return SlurmInventory(_slurm_rest(settings), partition=settings.slurm_partition,
                              host=settings.host_name, gpu_type=settings.slurm_gpu_type)
    if settings.fake_gpus:
        from bot.adapters.fake_gpus import SyntheticInventory

        return SyntheticInventory(settings.fake_gpus, host=settings.host_name)
    from bot.adapters.nvml import NvmlInventory

    return NvmlInventory(host=settings.host_name)


def make_runtime(settings: Settings) -> ContainerRuntime:
    if settings.engine == "slurm":
        return _slurm_runtime(settings)
    from bot.adapters.docker import DockerRuntime, DockerRuntimeConfig

    parse_size(settings.mem_limit)
    return DockerRuntime(DockerRuntimeConfig(
        image=settings.image, workspace_root=settings.workspace_root,
        bind_address=published_on(settings), mem_limit=settings.mem_limit, cpus=settings.cpus,
        ssh_bind_address=settings.bind_address,  # sshd's port: never behind the proxy
        shm_size=settings.shm_size, pids_limit=settings.pids_limit,
        gpu_request=not settings.fake_gpus, pull_missing=settings.pull_missing_image,
        host=settings.host_name, ready_poll_interval=0.05,
        block_host_access=settings.block_host_access, lease_subnets=str(settings.lease_subnets),
        rootfs_size=settings.rootfs_size, log_max_size=settings.log_max_size,
        log_max_files=settings.log_max_files))


def _slurm_runtime(settings: Settings) -> ContainerRuntime:
    from bot.adapters.slurm import SlurmRuntime, SlurmRuntimeConfig

    return SlurmRuntime(SlurmRuntimeConfig(
        url=settings.slurm_url, token_file=settings.slurm_token_file, user=settings.slurm_user,
        partition=settings.slurm_partition, image=settings.image,
        env_root=settings.slurm_env_root, workspace_root=settings.workspace_root,
        state_root=settings.slurm_state_root, host=settings.host_name,
        gpu_type=settings.slurm_gpu_type, cpus=max(1, int(settings.cpus)),
        memory_mb=parse_size(settings.mem_limit) // 2**20,
        time_limit=settings.max_lease, grace=settings.slurm_grace,
        jwt_key=settings.slurm_jwt_key, accounts_file=settings.slurm_accounts),
        rest=_slurm_rest(settings))


def _slurm_rest(settings: Settings) -> SlurmRest:
    from bot.adapters.slurm_auth import TokenMinter
    from bot.adapters.slurm_rest import SlurmRest

    key = settings.slurm_jwt_key
    return SlurmRest(settings.slurm_url, token_file=settings.slurm_token_file,
                     user=settings.slurm_user, minter=TokenMinter(key) if key else None)
