"""Reading Docker's inspect data into the ports' types (helpers of ``bot.adapters.docker``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from docker.errors import APIError

from bot.ports import ContainerState, ContainerStatus, ManagedContainer

LABEL_LEASE = "gpubot.lease"
LABEL_USER = "gpubot.user"
LABEL_GPUS = "gpubot.gpus"
LABEL_MANAGED = "gpubot.managed"
LABEL_HOST = "gpubot.host"  # GPUBOT_HOST_NAME: one engine may serve several bots

_RUNNING = frozenset({"running", "paused"})
_EXITED = frozenset({"exited", "dead", "restarting"})


def explain(exc: BaseException) -> str:
    """Docker's own explanation of a failure, for ``ContainerStartError.detail``."""
    if isinstance(exc, APIError) and exc.explanation:
        return str(exc.explanation)
    return str(exc) or type(exc).__name__


def state_from_inspect(attrs: Mapping[str, Any]) -> ContainerState:
    state = attrs.get("State") or {}
    status = str(state.get("Status", ""))
    if status in _RUNNING:
        return ContainerState(status=ContainerStatus.RUNNING)
    if status == "created":
        return ContainerState(status=ContainerStatus.STARTING)
    if status == "removing":
        return ContainerState(status=ContainerStatus.GONE)
    return ContainerState(
        status=ContainerStatus.EXITED,
        exit_code=state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        error=(state.get("Error") or None)
        if status in _EXITED
        else f"unknown container state {status!r}",
    )


def has_died(attrs: Mapping[str, Any]) -> bool:
    """Exited, or restarted by the restart policy since it was started."""
    state = attrs.get("State") or {}
    return state.get("Status") in _EXITED or int(attrs.get("RestartCount") or 0) > 0


def is_this_hosts(labels: Mapping[str, Any], host: str) -> bool:
    """A container (or network) with our lease label is this host's when its host label
    is ours, or absent/empty (made by hand or by a version before host labels, DESIGN.md
    §4). Docker's label filters cannot say "label absent", so this is checked here."""
    if LABEL_LEASE not in labels:
        return False
    theirs = labels.get(LABEL_HOST) or ""
    return not host or not theirs or theirs == host


def managed_container(
    container_id: str, name: str, attrs: Mapping[str, Any]
) -> ManagedContainer | None:
    """A container carrying our labels; None when its lease label is not a lease id."""
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    try:
        lease_id = int(labels.get(LABEL_LEASE, ""))
    except ValueError:
        return None
    gpus = tuple(uuid for uuid in str(labels.get(LABEL_GPUS, "")).split(",") if uuid)
    return ManagedContainer(
        lease_id=lease_id,
        user_id=str(labels.get(LABEL_USER, "")),
        gpu_uuids=gpus,
        container_id=container_id,
        name=name,
        state=state_from_inspect(attrs),
    )
