"""``gpubot doctor``'s checks of how leases are contained on the engine: dockerd's
live-restore, the firewall rules that keep leases off the host and each other, the bound
of a container's writable layer, and what the workspaces hold. Docker and iptables are
reached only through ``bot.adapters``; ``bot.doctor`` runs these in its fixed order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bot.doctor import CheckResult

GIB = 1024**3
_USER = re.compile(r"[A-Z0-9]{1,64}")  # a Slack user id: the workspace folders' names
_NO_DOCKER = "fix the 'Docker engine' check first"


def live_restore(client: Any) -> CheckResult:
    name = "Docker live-restore"
    if client is None:
        return CheckResult(name, False, "not checked: Docker is not reachable", _NO_DOCKER)
    from bot.adapters import docker_checks

    if docker_checks.live_restore(client):
        return CheckResult(name, True, "on: a dockerd restart or upgrade keeps leases running")
    return CheckResult(
        name, True, "off: restarting or upgrading dockerd stops every lease container, and "
        "each of those leases then fails (containers run with restart policy `no`)",
        'recommended: add "live-restore": true to /etc/docker/daemon.json, then '
        "`systemctl reload docker`")


def lease_isolation(enabled: bool) -> CheckResult:
    name = "Lease isolation"
    if not enabled:
        return CheckResult(name, True, "skipped: GPUBOT_BLOCK_HOST_ACCESS=false: the firewall "
                           "that keeps leases off this host's services is the admin's")
    from bot.adapters import docker_firewall

    try:
        added = docker_firewall.ensure()
    except docker_firewall.FirewallError as exc:
        if "permission" in str(exc).lower() or "root" in str(exc).lower():
            return CheckResult(name, True, f"skipped: {exc}; every lease start still proves "
                               "from inside the container that the host is unreachable",
                               "as root: `python -m bot.adapters.docker_firewall`")
        return CheckResult(name, False, str(exc), "install iptables, then as root: "
                           "`python -m bot.adapters.docker_firewall`")
    total = len(docker_firewall.rules())
    note = f" ({len(added)} were missing and were added)" if added else ""
    return CheckResult(name, True, f"all {total} rules keeping leases off this host and each "
                       f"other are in place{note}")


def writable_layer(client: Any, image: str, size: str, image_present: bool) -> CheckResult:
    name = "Writable layer bound"
    if client is None:
        return CheckResult(name, False, "not checked: Docker is not reachable", _NO_DOCKER)
    from bot.adapters import docker_checks

    driver = docker_checks.storage_driver(client)
    if not size:
        return CheckResult(name, True, f"skipped: GPUBOT_ROOTFS_SIZE is unset: a container's "
                           f"writable layer is bounded only by the disk ({driver})")
    if not image_present:
        return CheckResult(name, False, f"not checked: image {image} is not present",
                           "fix the 'Jupyter image' check first")
    outcome = docker_checks.storage_size_probe(client, image, size)
    if outcome.ok:
        return CheckResult(name, True, f"{size} per container ({driver})")
    return CheckResult(
        name, False, f"{driver} cannot bound a container's writable layer: {outcome.detail}",
        "unset GPUBOT_ROOTFS_SIZE, or put Docker's data root on xfs mounted with pquota "
        "(overlay2), or use the btrfs or zfs storage driver")


def workspace_usage(root: Path, *, top: int = 3) -> CheckResult:
    name = "Workspace usage"
    from bot.adapters.docker_workspace import workspace_usage as usage

    if not root.is_dir():
        return CheckResult(name, True, f"skipped: {root} does not exist yet")
    sizes = {}
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not entry.is_symlink() and _USER.fullmatch(entry.name):
            sizes[entry.name] = usage(root, entry.name) or 0
    if not sizes:
        return CheckResult(name, True, f"{root}: no workspaces yet")
    biggest = sorted(sizes.items(), key=lambda item: -item[1])[:top]
    listed = ", ".join(f"{user} {size / GIB:.1f} GiB" for user, size in biggest)
    return CheckResult(name, True, f"{len(sizes)} workspaces, {sum(sizes.values()) / GIB:.1f} "
                       f"GiB in all; largest: {listed}")
