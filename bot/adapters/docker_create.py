"""What a lease's container is created with (helpers of ``bot.adapters.docker``): limits,
user, labels, the published port, the per-lease network, log rotation, the writable-layer
bound, and the password hash as a 0600 file copied in before the start."""

from __future__ import annotations

import io
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docker.types import DeviceRequest, LogConfig

from bot.adapters.docker_ssh import add_ssh
from bot.adapters.docker_state import LABEL_GPUS, LABEL_HOST, LABEL_LEASE, LABEL_MANAGED, LABEL_USER
from bot.domain.lease import container_name
from bot.ports import ContainerSpec

JUPYTER_PORT = "8888/tcp"
def container_user(uid: int) -> str:
    """Each person's containers run as their own uid and gid (GPUBOT_UID_RANGE)."""
    return f"{uid}:{uid}"
WORKSPACE_MOUNT = "/workspace"
LABEL_ENV = "gpubot.env"  # the environment's name (DESIGN §4.1)
# Docker's convention for secrets; image/start-jupyter.sh reads the file the variable names.
SECRETS_DIR = "run/secrets"
HASH_FILE = f"/{SECRETS_DIR}/jupyter_password_hash"
HASH_FILE_ENV = "JUPYTER_PASSWORD_HASH_FILE"


@dataclass(frozen=True)
class DockerRuntimeConfig:
    image: str
    workspace_root: Path
    bind_address: str  # host address the Jupyter port is published on
    mem_limit: str  # docker notation, e.g. "96g"
    cpus: float
    shm_size: str  # e.g. "8g"
    pids_limit: int
    gpu_request: bool  # False with GPUBOT_FAKE_GPUS: no device request
    pull_missing: bool  # pull a missing image (with progress) instead of failing
    ready_poll_interval: float = 0.25
    stop_timeout: int = 10  # seconds between SIGTERM and SIGKILL
    host: str = ""  # labels our containers; list_managed and events see only these
    # json-file log rotation: without it os.write(1, ...) in a notebook fills the disk.
    log_max_size: str = "10m"
    log_max_files: int = 3
    # Bound of the container's writable layer (docker notation, "50g"); "" = unbounded.
    # Only where the storage driver supports it (overlay2 on xfs with pquota, btrfs, zfs).
    rootfs_size: str = ""
    lease_subnets: str = "172.30.0.0/16"  # one small subnet per lease is carved from it
    block_host_access: bool = True  # firewall rules keep leases off host services
    ssh_bind_address: str = ""  # sshd's port (GPUBOT_BIND_ADDRESS, also with a proxy)


def create_args(cfg: DockerRuntimeConfig, spec: ContainerSpec, workspace: Path,
                network: str) -> dict[str, Any]:
    # Only the file's path travels in the environment: `docker inspect` shows it all. The
    # uid has no /etc/passwd entry in the image: HOME is the workspace, its dotfiles kept.
    environment = {HASH_FILE_ENV: HASH_FILE, "HOME": WORKSPACE_MOUNT}
    device_requests = None
    if cfg.gpu_request and spec.gpu_uuids:
        device_requests = [DeviceRequest(device_ids=list(spec.gpu_uuids), capabilities=[["gpu"]])]
    else:
        # Also on hosts whose default runtime is NVIDIA's: no GPU without a request.
        environment["NVIDIA_VISIBLE_DEVICES"] = "void"
    args: dict[str, Any] = {
        "image": spec.image or cfg.image,  # the lease's environment (DESIGN §4.1)
        "name": container_name(spec.lease_id),
        "labels": {
            LABEL_LEASE: str(spec.lease_id),
            LABEL_USER: spec.user_id,
            LABEL_GPUS: ",".join(spec.gpu_uuids),
            LABEL_MANAGED: "1",
            LABEL_HOST: cfg.host,
            **({LABEL_ENV: spec.environment} if spec.environment else {}),
        },
        "environment": environment,
        "user": container_user(spec.uid),
        "ports": {JUPYTER_PORT: (cfg.bind_address, spec.port)},
        "network": network,
        "volumes": {str(workspace): {"bind": WORKSPACE_MOUNT, "mode": "rw"}},
        "mem_limit": cfg.mem_limit,
        "memswap_limit": cfg.mem_limit,
        "nano_cpus": round(cfg.cpus * 1e9),
        "shm_size": cfg.shm_size,
        "pids_limit": cfg.pids_limit,
        # "no": a dead container fails its lease; the engine must not bring it back as an
        # orphan. A dockerd restart keeps leases alive only with live-restore (doctor).
        "restart_policy": {"Name": "no"},
        "log_config": LogConfig(type=LogConfig.types.JSON, config={
            "max-size": cfg.log_max_size, "max-file": str(cfg.log_max_files)}),
        "security_opt": ["no-new-privileges:true"],
        "cap_drop": ["ALL"],
        "init": True,
        "device_requests": device_requests,
    }
    if cfg.rootfs_size:
        args["storage_opt"] = {"size": cfg.rootfs_size}
    add_ssh(args, spec, cfg.ssh_bind_address or cfg.bind_address)  # sshd's port
    return args


def secrets_archive(password_hash: str, uid: int) -> bytes:
    """A tar of ``run/secrets/jupyter_password_hash`` (0600) in a 0700 folder, both owned
    by the container user, for ``put_archive`` into the created container at ``/``."""
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo(SECRETS_DIR)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o700
        data = (password_hash + "\n").encode()
        file = tarfile.TarInfo(HASH_FILE.lstrip("/"))
        file.mode, file.size = 0o600, len(data)
        for info in (folder, file):
            info.uid = info.gid = uid
            info.mtime = now
        tar.addfile(folder)
        tar.addfile(file, io.BytesIO(data))
    return buffer.getvalue()
