"""One Docker bridge network per lease (helpers of ``bot.adapters.docker``).

On Docker's shared default bridge, code in one lease's kernel reached every other
lease's container address. Each lease gets its own user-defined bridge instead: dockerd
drops traffic between its bridges (its DOCKER-ISOLATION chains), ``docker_firewall``
adds the same for engines run without iptables and keeps leases off the host's own
services, and masquerading keeps egress (pip installs).

The network is named like the container (``gpubot-<lease id>``), labelled like it
(``gpubot.lease``, ``gpubot.host``, ``gpubot.managed``), and its bridge interface is
``gpb<lease id>`` (the firewall matches ``gpb+``). Each takes a /28 of
``lease_subnets`` that no network of the engine and no route of the host uses: Docker's
default pools hold only ~30 networks, fewer than a MIG host has leases. A network is removed with its container; one left by a crash, without a
container, goes in ``prune``, which ``list_managed`` (every reconcile) runs.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import threading
from collections.abc import Collection
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, NotFound
from docker.types import IPAMConfig, IPAMPool

from bot.adapters.docker_state import LABEL_HOST, LABEL_LEASE, LABEL_MANAGED, explain, is_this_hosts
from bot.domain.errors import ContainerStartError
from bot.domain.lease import container_name

log = logging.getLogger(__name__)

BRIDGE_PREFIX = "gpb"  # + lease id; Linux interface names have at most 15 characters
SUBNET_PREFIX = 28  # 14 addresses: the gateway and one container, room to spare
PRUNE_AFTER = timedelta(minutes=2)  # a network this young may be a start in flight
_ATTEMPTS = 8  # another bot on the engine may take the subnet we chose meanwhile
_allocating = threading.Lock()  # starts in one process do not race each other for a subnet


def bridge_name(lease_id: int) -> str:
    name = f"{BRIDGE_PREFIX}{lease_id}"
    if len(name) > 15:
        raise ContainerStartError(f"Lease id {lease_id} is too long for a network interface name.")
    return name


def ensure_network(client: docker.DockerClient, *, lease_id: int, host: str,
                   subnets: str) -> str:
    """The lease's network (created when missing); its name."""
    name = container_name(lease_id)
    with _allocating:
        existing = _ours(client, name, host)
        if existing is not None:
            return name
        pool = ipaddress.ip_network(subnets)
        for _ in range(_ATTEMPTS):
            subnet = _free_subnet(client, pool)
            try:
                client.networks.create(
                    name, driver="bridge", check_duplicate=True,
                    labels={LABEL_LEASE: str(lease_id), LABEL_HOST: host, LABEL_MANAGED: "1"},
                    options={"com.docker.network.bridge.name": bridge_name(lease_id),
                             "com.docker.network.bridge.enable_icc": "false",
                             "com.docker.network.bridge.enable_ip_masquerade": "true"},
                    ipam=IPAMConfig(pool_configs=[IPAMPool(
                        subnet=str(subnet), gateway=str(next(subnet.hosts())))]))
                return name
            except APIError as exc:
                if "overlap" not in explain(exc).lower():
                    raise
                log.info("subnet %s was taken meanwhile; trying another", subnet)
    raise ContainerStartError(
        f"No free /{SUBNET_PREFIX} subnet left in {subnets} (GPUBOT_LEASE_SUBNETS) for the "
        "lease's network; widen the range or move it off the networks in use.")


def remove_network(client: docker.DockerClient, lease_id: int, host: str) -> None:
    """Remove the lease's network if it is ours; its container must be gone first."""
    network = _ours(client, container_name(lease_id), host)
    if network is None:
        return
    try:
        network.remove()
    except NotFound:
        pass


def prune(client: docker.DockerClient, host: str, with_container: Collection[int]) -> list[int]:
    """Remove this host's lease networks whose lease has no container (left by a crash
    between creating the network and the container, or a failed removal); the lease ids
    whose network went. Young ones are kept: their start may be in flight."""
    removed = []
    cutoff = datetime.now(timezone.utc) - PRUNE_AFTER
    for attrs in client.api.networks(filters={"label": [LABEL_LEASE]}):
        labels = attrs.get("Labels") or {}
        lease = str(labels.get(LABEL_LEASE, ""))
        if not is_this_hosts(labels, host) or not lease.isdigit() or int(lease) in with_container:
            continue
        if _created(attrs) > cutoff:
            continue
        try:
            client.api.remove_network(attrs["Id"])
            removed.append(int(lease))
        except NotFound:
            pass
        except APIError as exc:  # e.g. an endpoint is still attached: the next run retries
            log.warning("could not remove network %s: %s", attrs.get("Name"), explain(exc))
    return removed


def _ours(client: docker.DockerClient, name: str, host: str) -> Any:
    for network in client.networks.list(names=[name]):
        if network.name == name and is_this_hosts(network.attrs.get("Labels") or {}, host):
            return network
    return None


def _free_subnet(client: docker.DockerClient, pool: Any) -> Any:
    used = [ipaddress.ip_network(config["Subnet"], strict=False)
            for attrs in client.api.networks()
            for config in (attrs.get("IPAM") or {}).get("Config") or []
            if config.get("Subnet")]
    used = [net for net in used + _host_routes() if net.version == pool.version]
    for subnet in pool.subnets(new_prefix=SUBNET_PREFIX):
        if not any(subnet.overlaps(net) for net in used):
            return subnet
    raise ContainerStartError(
        f"No free /{SUBNET_PREFIX} subnet left in {pool} (GPUBOT_LEASE_SUBNETS) for the "
        "lease's network; widen the range or move it off the networks in use.")


def _host_routes() -> list[Any]:
    """The IPv4 networks this host routes to already (other engines' bridges, the LAN),
    which Docker does not check for a subnet it is given: a lease there is unreachable."""
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return []
    routes = []
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or fields[1] == "00000000":
            continue  # the default route
        destination, mask = (socket.inet_ntoa(struct.pack("<I", int(f, 16)))
                             for f in (fields[1], fields[7]))
        routes.append(ipaddress.ip_network(f"{destination}/{mask}", strict=False))
    return routes


def _created(attrs: dict[str, Any]) -> datetime:
    text = str(attrs.get("Created") or "")
    try:  # "2024-05-01T10:00:00.123456789Z": Python takes at most microseconds
        head = text.partition(".")[0]
        return datetime.fromisoformat(head).replace(tzinfo=timezone.utc)
    except ValueError:
        return datetime.now(timezone.utc)
