"""Lease lifecycle jobs: expiry, reminders, container deaths, and their crash-safe effects.

Every job has the same two halves:

1. **Claim and decide, in one transaction.** Due rows are selected with
   ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL; a second bot process skips the rows
   the first one holds and, once it commits, no longer matches them) or inside SQLite's
   ``BEGIN IMMEDIATE`` (writers queue, so the second process reads the first one's
   commit). The status is re-checked in Python after the lock. The same transaction
   writes the new state and an *intent* row in ``audit`` (actor ``system``, action one
   of ``KINDS``) naming the effect still owed.
2. **Effects after the commit** (stop the container, tell the user), lease by lease,
   each in its own ``try`` so one bad lease never stops the others. Each effect that
   succeeded is acknowledged with an ``<action>.done`` audit row (written in bulk).

Crash recovery (``Reconciler.resume``, part of ``reconcile()``): an intent with no later
``.done`` row for its lease, older than ``retry_after``, is an effect a dead (or failing)
process owes. It is re-claimed under the lease's row lock, re-read after the lock,
re-issued as a fresh intent and its message sent again; retries stop ``horizon`` after
the lease ended (or when a reminder no longer makes sense). A redo never stops a
container: reconcile removes every container whose lease is not live anyway. Messages
are therefore *at least once*: a crash between a message and its ``.done`` row repeats
that one message. Without a crash each effect happens exactly once, also with two
processes (tests/integration/test_two_instances.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, insert, literal, not_, or_, select
from sqlalchemy.orm import Session

from bot.crashpoints import crashpoint
from bot.db.repo import LeaseRepo
from bot.db.tables import audit, leases
from bot.domain import reminders
from bot.domain.lease import LIVE, SYSTEM_ACTOR, Lease, LeaseStatus
from bot.ports import AccessInfo, ContainerState, ContainerStatus
from bot.services.claim import ACCESS_INTENT, FAILED_INTENT, ClaimService
from bot.services.deps import Deps

if TYPE_CHECKING:
    from bot.services.reconcile import ReconcileReport

log = logging.getLogger(__name__)

EXPIRE, REMIND, APPROVAL_TIMEOUT, CONTAINER_DIED = (
    "expire", "remind", "approval_timeout", "container_died")
ACCESS = ACCESS_INTENT  # written by ClaimService when a lease becomes active
CLAIM_FAILED = FAILED_INTENT  # written by ClaimService when a start fails
KINDS = (EXPIRE, REMIND, APPROVAL_TIMEOUT, CONTAINER_DIED, ACCESS, CLAIM_FAILED)
DONE = ".done"
SYSTEM = "system"
APPROVAL_TIMEOUT_REASON = "approval timed out"
DONE_FLUSH_SECONDS = 5.0  # wall time of effects between two bulk writes of .done rows


@dataclass(frozen=True)
class Effect:
    """An effect owed after a commit: ``kind`` is one of ``KINDS``."""

    kind: str
    lease: Lease
    state: ContainerState | None = None  # for CONTAINER_DIED
    redo: bool = False  # owed by a dead process: the message only (reconcile stops
    #                     containers of ended leases itself)


def death_reason(state: ContainerState) -> str:
    """The user-facing sentence stored as the lease's ``failure_reason``."""
    code = f" (exit code {state.exit_code})" if state.exit_code is not None else ""
    if state.oom_killed:
        text = f"Your Jupyter container ran out of memory and was killed{code}."
    elif state.status is ContainerStatus.GONE:
        text = "Your Jupyter container was removed outside gpubot."
    else:
        text = f"Your Jupyter container stopped unexpectedly{code}"
        text += f": {state.error}." if state.error else "."
    return text + " Your files are kept; claim again with `/gpu claim`."


def state_to_json(state: ContainerState) -> str:
    return json.dumps({"status": state.status.value, "exit_code": state.exit_code,
                       "oom_killed": state.oom_killed, "error": state.error})


def state_from_json(text: str | None) -> ContainerState:
    try:
        data = json.loads(text or "")
        return ContainerState(ContainerStatus(data["status"]), exit_code=data.get("exit_code"),
                              oom_killed=bool(data.get("oom_killed")), error=data.get("error"))
    except (ValueError, KeyError, TypeError):
        return ContainerState(ContainerStatus.GONE)


def write_intents(session: Session, effects: Sequence[Effect], *, now: datetime,
                  detail: Callable[[Effect], str | None] = lambda e: None) -> None:
    """One bulk INSERT of the intent rows for ``effects``."""
    if effects:
        session.execute(insert(audit), [
            {"at": now, "actor": SYSTEM, "action": e.kind, "lease_id": e.lease.id,
             "detail": detail(e)} for e in effects])


class LifecycleService:
    """The scheduler's jobs. All methods are idempotent and safe to run concurrently,
    in this process or in another bot process on the same database."""

    def __init__(self, deps: Deps, claims: ClaimService, *, batch_size: int = 200,
                 starting_grace: timedelta = timedelta(minutes=10),
                 retry_after: timedelta = timedelta(minutes=10),
                 horizon: timedelta = timedelta(hours=24)) -> None:
        self.d = deps
        self.claims = claims
        self.batch_size = batch_size
        self.starting_grace = starting_grace  # added to ready_timeout for stuck starts
        self.retry_after = retry_after  # an unacknowledged effect is redone after this
        self.horizon = horizon  # ... until this long after the lease ended

    # ----------------------------------------------------------------- expiry
    def expire(self) -> int:
        """End every live lease whose time is up; stop its container (the workspace
        stays) and tell its holder. Returns how many leases this call expired."""
        now = self.d.clock.now()
        due = and_(leases.c.status.in_(LIVE), leases.c.expires_at <= now)

        def decide(lease: Lease) -> Effect | None:
            if not lease.status.live or lease.expires_at is None or lease.expires_at > now:
                return None  # re-check after the lock
            lease.transition(LeaseStatus.EXPIRED, at=now)
            return Effect(EXPIRE, lease)

        return self.sweep(due, decide, now=now, frees=True)

    # -------------------------------------------------------------- reminders
    def remind(self) -> int:
        """Send each due reminder offset once per lease (the nearest when several are
        due); ``ManageService.extend`` re-arms offsets that lie ahead again."""
        now = self.d.clock.now()
        offsets = tuple(self.d.config.remind_before)
        if not offsets:
            return 0
        sent_csv = literal(",") + leases.c.reminders_sent + literal(",")
        unsent_and_due = [and_(leases.c.expires_at <= now + o,
                               not_(sent_csv.like(f"%,{int(o.total_seconds())},%")))
                          for o in offsets]
        due = and_(leases.c.status == LeaseStatus.ACTIVE, leases.c.expires_at > now,
                   or_(*unsent_and_due))

        def decide(lease: Lease) -> Effect | None:
            if lease.status is not LeaseStatus.ACTIVE or lease.expires_at is None:
                return None
            offset, sent = reminders.due(offsets, remaining=lease.expires_at - now,
                                         sent=reminders.parse_sent(lease.reminders_sent))
            if offset is None:
                return None  # another process sent it (re-check after the lock)
            lease.reminders_sent = reminders.format_sent(sent)
            return Effect(REMIND, lease)

        return self.sweep(due, decide, now=now)

    # ------------------------------------------------------- container deaths
    def on_container_event(self, lease_id: int, state: ContainerState) -> Lease | None:
        """A Docker ``die``/``oom`` event for a lease's container. A running lease is
        failed at once and its holder told; returns it, or None when nothing changed
        (the lease already ended, is still starting, or the container runs again)."""
        if state.status in (ContainerStatus.RUNNING, ContainerStatus.STARTING):
            return None
        try:
            current = self.d.runtime.poll(lease_id)
        except Exception:  # the engine cannot answer: trust the event
            log.warning("lease %s: cannot poll its container; trusting the event", lease_id,
                        exc_info=True)
        else:
            if current.status is ContainerStatus.RUNNING:
                return None  # restarted meanwhile: not dead
            if state.exit_code is None and current.exit_code is not None:
                state = current
        failed = self.fail_dead({lease_id: state}, wait=True)
        return failed[0] if failed else None

    def fail_dead(self, states: dict[int, ContainerState], *, wait: bool = False) -> list[Lease]:
        """Mark ACTIVE leases whose container died FAILED (reason with exit code / OOM),
        free their GPUs and ports, then remove the dead container and tell the holder.
        Leases that are no longer ACTIVE are left alone. ``wait``: block on a row lock
        held by another transaction instead of skipping that lease."""
        if not states:
            return []
        now = self.d.clock.now()

        def work(session: Session) -> list[Effect]:
            query = (select(Lease).where(leases.c.id.in_(list(states)),
                                         leases.c.status == LeaseStatus.ACTIVE)
                     .order_by(leases.c.id).with_for_update(skip_locked=not wait))
            effects = []
            for lease in session.scalars(query):
                if lease.status is not LeaseStatus.ACTIVE:
                    continue
                state = states[lease.id or 0]
                lease.transition(LeaseStatus.FAILED, at=now)
                lease.failure_reason = death_reason(state)
                effects.append(Effect(CONTAINER_DIED, lease, state))
            LeaseRepo(session).free_allocations(*(e.lease.id or 0 for e in effects))
            write_intents(session, effects, now=now,
                          detail=lambda e: state_to_json(e.state) if e.state else None)
            return effects

        effects = self.d.db.run(work)
        for effect in effects:
            log.warning("lease %s failed: %s", effect.lease.id, effect.lease.failure_reason)
        self.perform(effects)
        return [e.lease for e in effects]

    # ------------------------------------------------------------- reconcile
    def reconcile(self) -> ReconcileReport:
        """Compare the database with the engine and repair both (see reconcile.py)."""
        from bot.services.reconcile import Reconciler

        return Reconciler(self).run()

    # ---------------------------------------------------------------- effects
    def perform(self, effects: Sequence[Effect]) -> int:
        """Carry out owed effects one by one; acknowledge the ones that succeeded."""
        done: list[Effect] = []
        flushed = time.monotonic()
        for effect in effects:
            try:
                self._do(effect)
                done.append(effect)
            except Exception:
                log.exception("lease %s: %s effect failed; it will be retried",
                              effect.lease.id, effect.kind)
            if done and time.monotonic() - flushed > DONE_FLUSH_SECONDS:
                self._acknowledge(done)
                done, flushed = [], time.monotonic()
        self._acknowledge(done)
        return len(effects)

    def _do(self, effect: Effect) -> None:
        lease, d = effect.lease, self.d
        if effect.kind in (EXPIRE, CONTAINER_DIED) and not effect.redo:
            try:
                d.runtime.stop(lease.id or 0)  # keeps the workspace
            except Exception:  # the lease is no longer live: reconcile removes it later
                log.exception("lease %s: could not stop its container", lease.id)
        if effect.kind == EXPIRE:
            d.notifier.expired(lease, workspace=str(d.config.workspace(lease.user_id)))
        elif effect.kind == CONTAINER_DIED:
            d.notifier.container_died(lease, effect.state or ContainerState(ContainerStatus.GONE))
        elif effect.kind == REMIND and lease.expires_at is not None:
            d.notifier.reminder(lease, lease.expires_at - d.clock.now())
        elif effect.kind == ACCESS and lease.password_token:
            d.notifier.access_ready(lease, AccessInfo(url=d.config.url(lease.port or 0),
                                                      password=d.vault.decrypt(lease.password_token)))
        elif effect.kind == CLAIM_FAILED:
            d.notifier.claim_failed(lease, lease.failure_reason or "Your environment could "
                                    "not be started.")
        elif effect.kind == APPROVAL_TIMEOUT:
            d.notifier.approval_decided(lease, approved=False, by=SYSTEM_ACTOR,
                                        reason=APPROVAL_TIMEOUT_REASON)

    def _acknowledge(self, effects: Sequence[Effect]) -> None:
        if not effects:
            return
        now = self.d.clock.now()
        rows = [{"at": now, "actor": SYSTEM, "action": e.kind + DONE, "lease_id": e.lease.id}
                for e in effects]
        try:
            self.d.db.run(lambda session: session.execute(insert(audit), rows))
        except Exception:  # the effects will be repeated once: at least once, never lost
            log.exception("could not acknowledge %d effect(s)", len(rows))

    # ----------------------------------------------------------------- sweeps
    def sweep(self, due: Any, decide: Callable[[Lease], Effect | None], *, now: datetime,
               frees: bool = False) -> int:
        """Claim due leases batch by batch (row locks), decide each in the claiming
        transaction, then perform the effects of that batch after its commit."""
        total = 0
        while True:
            def work(session: Session) -> tuple[int, list[Effect]]:
                query = (select(Lease).where(due).order_by(leases.c.expires_at, leases.c.id)
                         .limit(self.batch_size).with_for_update(skip_locked=True))
                claimed = list(session.scalars(query))
                effects = []
                for lease in claimed:
                    try:
                        effect = decide(lease)
                    except Exception:  # one bad row must not hold up the others
                        log.exception("lease %s: skipped by the lifecycle job", lease.id)
                        session.expunge(lease)  # write none of its half-made changes
                        continue
                    if effect is not None:
                        effects.append(effect)
                if frees:
                    LeaseRepo(session).free_allocations(*(e.lease.id or 0 for e in effects))
                write_intents(session, effects, now=now)
                return len(claimed), effects

            claimed, effects = self.d.db.run(work)
            if effects:
                crashpoint(f"{effects[0].kind}.after_commit")
            self.perform(effects)
            total += len(effects)
            if claimed < self.batch_size or not effects:
                return total
