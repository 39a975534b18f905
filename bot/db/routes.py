"""The proxy routes the database calls for: one per active lease of this host that has
a route label (``bot.services.routes`` compares them with what the proxy serves)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.tables import leases
from bot.domain.lease import LeaseStatus


class RouteRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    def active_routes(self, *, host: str) -> dict[str, tuple[int, int, str | None]]:
        """label -> (lease id, port, address) of this host's active leases that have a
        label (address: its node's, when it runs elsewhere)."""
        rows = self.s.execute(
            select(leases.c.route_label, leases.c.id, leases.c.port, leases.c.address).where(
                leases.c.status == LeaseStatus.ACTIVE, leases.c.host == host,
                leases.c.route_label.is_not(None), leases.c.port.is_not(None)))
        return {label: (lease_id, port, address) for label, lease_id, port, address in rows}
