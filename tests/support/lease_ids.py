"""Start a test database's lease ids inside the session's own block (tests/infra/
docker_engine.LeaseIds), so containers named gpubot-<id> on the shared test engine never
meet another test's, and the session's clean-up finds them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text

from bot.db.engine import Database
from bot.db.tables import leases, users


def start_lease_ids_at(db: Database, first: int) -> None:
    with db.transaction() as session:
        if db.is_sqlite:  # no sequence: the next id follows the highest row, kept ended
            now = datetime.now(UTC)
            session.execute(insert(users).values(id="UIDBLOCK", created_at=now))
            session.execute(insert(leases).values(
                id=first - 1, user_id="UIDBLOCK", status="released", duration_s=timedelta(0),
                gpu_count=0, gpu_uuids=(), created_at=now, ended_at=now, reminders_sent=""))
        else:
            session.execute(text("SELECT setval(pg_get_serial_sequence('leases', 'id'), :n)"),
                            {"n": first - 1})
