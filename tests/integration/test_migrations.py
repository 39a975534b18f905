"""Migrations: empty → head → base, and the models match head exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from bot.db import migrate
from bot.db.engine import make_engine
from bot.db.tables import metadata

TABLES = {"users", "leases", "gpu_allocations", "port_allocations", "gpu_usage", "port_usage",
          "gpu_daily", "ssh_keys",
          "audit"}


def test_upgrade_downgrade_and_no_drift(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert migrate.is_migrated(engine)[0] is False
        migrate.upgrade(db_url)
        assert TABLES <= set(inspect(engine).get_table_names())
        ok, detail = migrate.is_migrated(engine)
        assert ok, detail
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
        migrate.downgrade(db_url, "base")
        assert not TABLES & set(inspect(engine).get_table_names())
        migrate.upgrade(db_url)  # and back again
        assert migrate.is_migrated(engine)[0]
    finally:
        engine.dispose()


def test_revision_files_are_date_prefixed() -> None:
    versions = migrate.script_location() / "versions"
    names = [p.name for p in versions.glob("*.py")]
    assert names and all(n[:8].isdigit() and n[8] == "_" for n in names)


def test_every_model_table_is_migrated(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    migrate.upgrade(url)
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) - {"alembic_version"} == set(metadata.tables)
