"""The outbox's rows: intents and their acknowledgements, kept in the ``audit`` table.

An intent is an ``audit`` row by actor ``system`` whose action is an effect kind; its
acknowledgement is a later row of the same lease with action ``<kind>.done``. The rules
that give these rows a meaning live in ``bot.services.outbox``; this module only reads
and writes them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, insert, select
from sqlalchemy.orm import Session

from bot.db.tables import audit
from bot.domain.lease import SYSTEM_ACTOR as SYSTEM

DONE = ".done"


@dataclass(frozen=True)
class IntentRow:
    lease_id: int
    kind: str
    detail: str | None = None


class OutboxStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    def write(self, rows: Sequence[IntentRow], *, now: datetime) -> None:
        """Intents, in the caller's transaction (one bulk INSERT)."""
        if rows:
            self.session.execute(insert(audit), [
                {"at": now, "actor": SYSTEM, "action": r.kind, "lease_id": r.lease_id,
                 "detail": r.detail} for r in rows])

    def acknowledge(self, rows: Sequence[IntentRow], *, now: datetime,
                    detail: str | None = None) -> None:
        if rows:
            self.session.execute(insert(audit), [
                {"at": now, "actor": SYSTEM, "action": r.kind + DONE, "lease_id": r.lease_id,
                 "detail": detail} for r in rows])

    def owed(self, *, kinds: Collection[str], before: datetime, since: datetime,
             limit: int, lease_ids: Collection[int] | None = None) -> list[IntentRow]:
        """Intents written in [since, before] with no later acknowledgement, oldest
        first; one row per (lease, kind)."""
        a, done = audit.alias("a"), audit.alias("d")
        query = (select(a.c.lease_id, a.c.action, a.c.detail).where(
            a.c.action.in_(list(kinds)), a.c.at <= before,
            a.c.at >= since, ~exists().where(done.c.lease_id == a.c.lease_id,
                                               done.c.action == a.c.action + DONE,
                                               done.c.id > a.c.id))
            .order_by(a.c.id).limit(limit))
        if lease_ids is not None:
            query = query.where(a.c.lease_id.in_(list(lease_ids)))
        rows: dict[tuple[int, str], IntentRow] = {}
        for row in self.session.execute(query):
            rows[(row.lease_id, row.action)] = IntentRow(row.lease_id, row.action, row.detail)
        return list(rows.values())

    def count_owed(self, *, kinds: Collection[str], since: datetime) -> int:
        """How many intents written since ``since`` are not acknowledged (a gauge)."""
        a, done = audit.alias("a"), audit.alias("d")
        return self.session.scalar(select(func.count()).select_from(a).where(
            a.c.action.in_(list(kinds)), a.c.at >= since,
            ~exists().where(done.c.lease_id == a.c.lease_id,
                            done.c.action == a.c.action + DONE, done.c.id > a.c.id))) or 0

    def prune(self, *, kinds: Collection[str], before: datetime) -> int:
        """Delete acknowledged intents older than ``before``, then the acknowledgements
        that no longer follow any intent. An intent never acknowledged is kept whatever
        its age: it may still be owed (``owed``), or it records an effect that never
        happened. An acknowledgement is deleted only with every intent before it, so no
        old intent ever looks unacknowledged again."""
        done, intent = audit.alias("d"), audit.alias("i")
        intents = self.session.execute(delete(audit).where(
            audit.c.action.in_(list(kinds)), audit.c.at < before,
            exists().where(done.c.lease_id == audit.c.lease_id,
                           done.c.action == audit.c.action + DONE, done.c.id > audit.c.id)))
        acks = self.session.execute(delete(audit).where(
            audit.c.action.in_([k + DONE for k in kinds]), audit.c.at < before,
            ~exists().where(intent.c.lease_id == audit.c.lease_id,
                            intent.c.action + DONE == audit.c.action,
                            intent.c.id < audit.c.id)))
        return _count(intents) + _count(acks)

    def prune_audit(self, *, effect_kinds: Collection[str], before: datetime) -> int:
        """Delete the rest of the audit trail (who claimed, released, approved...) older
        than ``before``; intents and acknowledgements are ``prune``'s."""
        outbox = [*effect_kinds, *(k + DONE for k in effect_kinds)]
        return _count(self.session.execute(delete(audit).where(
            audit.c.action.not_in(outbox), audit.c.at < before)))


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def window(now: datetime, *, retry_after: timedelta, horizon: timedelta
           ) -> tuple[datetime, datetime]:
    """(since, before): intents old enough to be owed by a dead process, young enough
    to be worth redoing."""
    return now - horizon - retry_after, now - retry_after
