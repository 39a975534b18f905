"""Engine and unit of work for SQLite and PostgreSQL.

SQLite: WAL, a busy timeout, foreign keys on, and every transaction opened with
``BEGIN IMMEDIATE`` so writers queue instead of failing half-way with "database is
locked" (SQLite's answer to ``SELECT ... FOR UPDATE``). PostgreSQL: READ COMMITTED with
explicit row locks (``with_for_update``) where a decision depends on what it read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from bot.db.tables import map_domain

SQLITE_BUSY_TIMEOUT_MS = 30_000
TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
T = TypeVar("T")
log = logging.getLogger(__name__)
AFTER_COMMIT = "gpubot.after_commit"


def after_commit(session: Session, hook: Callable[[], object]) -> None:
    """Run ``hook`` once the transaction of ``session`` has committed: how effects owed
    outside the database (messages, container stops) follow the state that owes them."""
    session.info.setdefault(AFTER_COMMIT, []).append(hook)


def is_transient(exc: DBAPIError) -> bool:
    """A failure that a fresh attempt of the same transaction may not meet again."""
    return (getattr(exc.orig, "sqlstate", None) in TRANSIENT_SQLSTATES
            or "database is locked" in str(exc.orig))


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not psycopg2
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                                     "check_same_thread": False}, **kwargs)
        _configure_sqlite(engine)
        return engine
    return create_engine(parsed, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let us emit BEGIN ourselves
        cursor = dbapi_conn.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """Owns the engine; ``transaction()`` is the unit of work (commit or roll back)."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        map_domain()
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction; the callbacks given to ``after_commit`` during it run once
        it has committed and its connection is back in the pool (never on rollback)."""
        with self._sessions() as session:
            with session.begin():
                yield session
            hooks = session.info.pop(AFTER_COMMIT, [])
        for hook in hooks:
            hook()

    def run(self, work: Callable[[Session], T], *, attempts: int = 3) -> T:
        """``work`` in a transaction, retried from scratch on a deadlock or
        serialization failure (``work`` must therefore have no outside effects)."""
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction() as session:
                    return work(session)
            except DBAPIError as exc:
                if attempt == attempts or not is_transient(exc):
                    raise
                log.info("transient database error, retrying (%s/%s): %s", attempt,
                         attempts, exc.orig)
        raise AssertionError("unreachable")

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def dispose(self) -> None:
        self.engine.dispose()
