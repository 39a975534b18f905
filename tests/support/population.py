"""Thousands of active leases in one bulk insert, for the scale test and the benchmark."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert

from bot.db.tables import gpu_allocations, leases, port_allocations, users
from bot.domain.lease import LeaseStatus


def spread_expiry(i: int, *, due: int, now: datetime) -> datetime:
    """Leases 1..due ended a minute ago; due+1..2·due have 5 minutes left (a reminder is
    due); the rest end between 2 hours and 7 days from now."""
    if i <= due:
        return now - timedelta(minutes=1)
    if i <= 2 * due:
        return now + timedelta(minutes=5)
    return now + timedelta(hours=2) + timedelta(minutes=i % (7 * 24 * 60 - 120))


def populate(db: Any, now: datetime, *, total: int, host: str,
             expiry: Callable[[int], datetime]) -> None:
    """Leases 1..total, active, each with its user, GPU and port allocation."""
    ids = range(1, total + 1)
    with db.transaction() as s:
        s.execute(insert(users), [{"id": f"U{i:05d}", "created_at": now} for i in ids])
        s.execute(insert(leases), [{
            "id": i, "user_id": f"U{i:05d}", "status": LeaseStatus.ACTIVE,
            "duration_s": timedelta(days=7), "gpu_count": 1, "host": host,
            "gpu_uuids": (f"GPU-bench-{i:05d}",), "port": 20000 + i,
            "container_name": f"gpubot-{i}", "container_id": f"c{i}",
            "created_at": now - timedelta(hours=1), "started_at": now - timedelta(hours=1),
            "expires_at": expiry(i), "reminders_sent": ""} for i in ids])
        s.execute(insert(gpu_allocations), [{"gpu_uuid": f"GPU-bench-{i:05d}", "host": host,
                                             "lease_id": i, "allocated_at": now} for i in ids])
        s.execute(insert(port_allocations), [{"host": host, "port": 20000 + i, "lease_id": i,
                                              "allocated_at": now} for i in ids])
