"""SSH into a lease's container (helpers of ``bot.adapters.docker``, issue 13.2).

The image's sshd (image/start-sshd.sh, image/sshd_config) runs as the lease's user on
port 2222 inside; the bot publishes it on GPUBOT_BIND_ADDRESS at the lease's SSH port and
copies in, like the password hash, ``/run/secrets/ssh/`` (0700) holding the lease's host
key and the holder's authorized keys (both 0600, owned by the lease's uid: sshd's
StrictModes refuses anything looser). Only the login name travels in the environment.
"""

from __future__ import annotations

import io
import tarfile
import time
from typing import Any

from bot.domain.errors import ContainerStartError
from bot.domain.ssh import SSH_PORT_IN_CONTAINER
from bot.ports import ContainerSpec

SSH_PORT = f"{SSH_PORT_IN_CONTAINER}/tcp"
SSH_DIR = "run/secrets/ssh"
HOST_KEY_FILE = f"{SSH_DIR}/ssh_host_ed25519_key"
AUTHORIZED_KEYS_FILE = f"{SSH_DIR}/authorized_keys"
# Read by image/start-jupyter.sh: sshd starts only when the folder holds a host key.
ENV_DIR, ENV_LOGIN = "GPUBOT_SSH_DIR", "GPUBOT_SSH_LOGIN"


def validate(spec: ContainerSpec) -> None:
    if spec.ssh_port is None:
        return
    if not 1 <= spec.ssh_port <= 65535 or spec.ssh_port == spec.port:
        raise ContainerStartError(f"SSH port {spec.ssh_port} is not a TCP port of its own.")
    if "PRIVATE KEY" not in spec.ssh_host_key or not spec.login:
        raise ContainerStartError("Refusing to start sshd without a host key and a login.")


def add_ssh(args: dict[str, Any], spec: ContainerSpec, bind_address: str) -> None:
    """Publish sshd's port and name the login: ``create_args`` for a lease with SSH."""
    if spec.ssh_port is None:
        return
    args["ports"][SSH_PORT] = (bind_address, spec.ssh_port)
    args["environment"].update({ENV_DIR: f"/{SSH_DIR}", ENV_LOGIN: spec.login})


def ssh_archive(spec: ContainerSpec) -> bytes:
    """``run/secrets/ssh/{ssh_host_ed25519_key,authorized_keys}`` for ``put_archive`` at
    ``/``, after the password hash's archive (which makes ``run/secrets``)."""
    return _tar(spec.uid, {HOST_KEY_FILE: spec.ssh_host_key,
                           AUTHORIZED_KEYS_FILE: spec.authorized_keys}, folder=SSH_DIR)


def put_authorized_keys(container: Any, text: str) -> None:
    """Replace the running container's authorized_keys (owned by its uid, 0600)."""
    if not container.put_archive("/", _tar(uid_of(container), {AUTHORIZED_KEYS_FILE: text})):
        raise ContainerStartError(f"The SSH keys were not copied into {container.name}.")


def uid_of(container: Any) -> int:
    """The uid a container runs as ("200001:200001")."""
    user = (container.attrs.get("Config") or {}).get("User") or ""
    head = user.split(":", 1)[0]
    if not head.isdigit():
        raise ContainerStartError(f"The container runs as {user!r}, not as a numeric uid.")
    return int(head)


def _tar(uid: int, files: dict[str, str], *, folder: str | None = None) -> bytes:
    buffer, now = io.BytesIO(), time.time()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        if folder:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.uid, info.gid, info.mtime = (
                tarfile.DIRTYPE, 0o700, uid, uid, now)
            tar.addfile(info)
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.mode, info.size, info.uid, info.gid, info.mtime = 0o600, len(data), uid, uid, now
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
