"""Proxy routes (GPUBOT_PROXY=caddy): one HTTPS host per active lease.

A lease granted while the proxy is on gets a random label (``new_route_label``; never
derived from its id, so host names reveal nothing and cannot be guessed), and with it
the host ``<label>.<GPUBOT_PUBLIC_DOMAIN>``: cookies are per host, so one lease's
Jupyter session never reaches another's (the JupyterHub subdomain model).

Routes are outbox effects: ``route_add`` is owed by the transaction that makes a lease
active, ``route_remove`` by ``LeaseEnder.end``. ``add_route`` re-reads the lease under
its row lock and adds the route only while it is still active, so a release racing the
add always wins (its ``route_remove`` runs after its commit, and so after our add).
The reconciler's ``reconcile_routes`` compares what the proxy serves with the active
leases: a Caddy restart (no config), a bot crash, or an admin's edit leaves no route to
an ended lease and every live one restored after one run.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from bot.db.repo import LeaseRepo
from bot.db.routes import RouteRepo
from bot.domain.lease import LeaseStatus
from bot.services.resources import Resources

log = logging.getLogger(__name__)
# With the proxy on, containers publish Jupyter on loopback only (bot.bootstrap): Caddy on
# this host reaches it there, nothing else can (lease bridges are firewalled off the host).
# A lease on a cluster node (Slurm) is reached at that node's address.
UPSTREAM_HOST = "127.0.0.1"


def new_route_label() -> str:
    """16 hex digits (64 random bits): a valid DNS label, unguessable."""
    return secrets.token_hex(8)


def upstream(port: int, address: str | None = None) -> str:
    return f"{address or UPSTREAM_HOST}:{port}"


def add_route(res: Resources, lease_id: int) -> bool:
    """The ``route_add`` effect: route the lease's host to its Jupyter, if it is still
    active (checked under its row lock, held while the proxy is told). True if added."""
    if res.proxy is None:
        return False
    with res.db.transaction() as session:
        lease = LeaseRepo(session).get(lease_id, lock=True)
        if lease.status is not LeaseStatus.ACTIVE or not lease.route_label or not lease.port:
            return False
        res.proxy.add_route(lease.route_label, upstream(lease.port, lease.address))
    return True


def remove_route(res: Resources, label: str | None) -> None:
    """The ``route_remove`` effect (idempotent)."""
    if res.proxy is not None and label:
        res.proxy.remove_route(label)


@dataclass
class RouteRepair:
    added: int = 0
    removed: int = 0


def reconcile_routes(res: Resources) -> RouteRepair:
    """Make the proxy serve exactly the active leases' routes (a reconcile step)."""
    repair = RouteRepair()
    proxy = res.proxy
    if proxy is None:
        return repair
    proxy.ensure_server()  # a restarted Caddy starts empty: our server and TLS first
    served = proxy.routes()  # before the leases are read: see add_route for the race
    with res.db.transaction() as session:
        wanted = RouteRepo(session).active_routes(host=res.config.host)
    for label in sorted(set(served) - set(wanted)):
        try:
            proxy.remove_route(label)
            repair.removed += 1
            log.warning("proxy: removed the route %s (no active lease has it)", label)
        except Exception:  # one route's failure does not stop the others
            log.exception("proxy: could not remove the route %s", label)
    for label, (lease_id, port, address) in sorted(wanted.items()):
        if served.get(label) == upstream(port, address):
            continue
        try:
            if add_route(res, lease_id):
                repair.added += 1
                log.warning("proxy: restored the route of lease %s", lease_id)
        except Exception:
            log.exception("proxy: could not restore the route of lease %s", lease_id)
    return repair
