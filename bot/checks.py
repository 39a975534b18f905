"""Wires ``gpubot doctor`` to this installation's settings and database."""

from __future__ import annotations

from bot.db import migrate
from bot.db.engine import Database
from bot.db.repo import LeaseRepo
from bot.doctor import doctor_main, run_checks_for_settings
from bot.settings import Settings


def run_doctor(settings: Settings, *, as_json: bool = False) -> int:
    db = Database(settings.database_url)
    busy_ports: set[int] = set()

    def database_check() -> tuple[bool, str]:
        ok, detail = migrate.is_migrated(db.engine)
        if ok:
            with db.transaction() as session:
                busy_ports.update(LeaseRepo(session).taken_ports(settings.host_name))
        return ok, detail

    try:
        database = _guarded(database_check)
        results = run_checks_for_settings(settings, database_check=lambda: database,
                                          expected_busy_ports=busy_ports)
    finally:
        db.dispose()
    return doctor_main(results, as_json)


def _guarded(check):  # type: ignore[no-untyped-def]
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - unreachable database = failed check
        return False, f"cannot reach it: {str(exc).splitlines()[0]}"
