"""Growth (issue 11.13): acknowledged effects and the old audit trail are deleted by the
``prune`` job; an intent never acknowledged never is. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.db.engine import Database
from bot.db.outbox import IntentRow, OutboxStore
from bot.db.tables import audit
from bot.scheduler import build_scheduler
from bot.settings import Settings
from tests.fakes.services import Harness, build_harness

DAY = timedelta(days=1)


def actions(db: Database) -> list[tuple[int | None, str]]:
    with db.transaction() as session:
        return [(r.lease_id, r.action) for r in session.execute(
            select(audit.c.lease_id, audit.c.action).order_by(audit.c.id))]


def owed(kit: Harness) -> int:
    since = kit.clock.now() - 10_000 * DAY
    with kit.res.db.transaction() as session:
        return OutboxStore(session).count_owed(kinds=kit.gpubot.outbox.kinds, since=since)


def write(kit: Harness, kind: str, lease_id: int, *, ago: timedelta, done: bool) -> None:
    at = kit.clock.now() - ago
    with kit.res.db.transaction() as session:
        store = OutboxStore(session)
        store.write([IntentRow(lease_id, kind)], now=at)
        if done:
            store.acknowledge([IntentRow(lease_id, kind)], now=at)


def test_prune_keeps_every_pending_intent_and_the_audit_trail_per_its_setting(
        db: Database) -> None:
    kit = build_harness(db, settings=Settings(GPUBOT_EFFECT_RETENTION="7d",
                                              GPUBOT_AUDIT_RETENTION="30d"))
    lease = kit.claims.start(kit.claims.claim(user_id="U1", duration=timedelta(hours=2)).id or 0)
    lid = lease.id or 0
    assert actions(db) == [(lid, "claim"), (lid, "active"), (lid, "access"),
                           (lid, "access.done")]
    write(kit, "remind", lid, ago=20 * DAY, done=False)  # lost by a crash, never redone
    write(kit, "container_died", lid, ago=1 * DAY, done=False)  # still owed

    kit.clock.advance(8 * DAY)
    assert kit.gpubot.prune() == 2  # the access intent and its acknowledgement
    assert actions(db) == [(lid, "claim"), (lid, "active"), (lid, "remind"),
                           (lid, "container_died")]
    assert owed(kit) == 2

    kit.clock.advance(365 * DAY)
    assert kit.gpubot.prune() == 2  # the user's claim and the activation: the audit trail
    assert actions(db) == [(lid, "remind"), (lid, "container_died")], "pending: never pruned"
    assert owed(kit) == 2


def test_prune_never_makes_an_acknowledged_intent_look_owed_again(db: Database) -> None:
    kit = build_harness(db)
    lease = kit.claims.claim(user_id="U1", duration=timedelta(hours=2))
    lid = lease.id or 0
    # written in this order (ids rise), but the acknowledging process's clock was behind:
    # the intent looks young, its acknowledgement old
    write(kit, "remind", lid, ago=1 * DAY, done=False)
    with kit.res.db.transaction() as session:
        OutboxStore(session).acknowledge([IntentRow(lid, "remind")],
                                         now=kit.clock.now() - 30 * DAY)
    # a redo: intent, "retrying" acknowledgement, fresh intent still owed
    write(kit, "expire", lid, ago=40 * DAY, done=True)
    write(kit, "expire", lid, ago=39 * DAY, done=False)
    assert owed(kit) == 1
    kit.gpubot.outbox.prune(effects_older_than=7 * DAY, audit_older_than=365 * DAY)
    assert owed(kit) == 1, "the young remind intent is still acknowledged"
    remaining = [a for _, a in actions(db)]
    assert remaining.count("remind") == 1 and remaining.count("remind.done") == 1
    assert remaining.count("expire") == 1 and "expire.done" not in remaining


def test_the_prune_job_runs_hourly(db: Database) -> None:
    kit = build_harness(db)
    scheduler = build_scheduler(kit.gpubot.jobs(), 30)
    job = scheduler.get_job("prune")
    assert job is not None and job.trigger.interval == timedelta(hours=1)
