"""Reconciliation: the database is the truth; the container engine is observed and repaired.

Policies (each step runs on its own; one failing step or lease does not stop the rest):

- **Orphan containers.** A managed container (our labels) whose lease is not live
  (``starting``/``active``) is stopped and removed: ``runtime.stop`` never touches the
  workspace. The engine is listed *before* the leases are read, so a container created
  after a grant is always matched by that grant's committed row.
- **Dead containers of active leases.** An ``active`` lease on this host whose container
  has exited (``EXITED``: crash, OOM kill) or is gone (removed by hand) is marked
  ``failed`` with a reason naming the exit code or the OOM kill, its GPUs and port are
  freed, the dead container is removed and the holder gets ``container_died``. We never
  restart a dead container: the user's process state is lost anyway, and a GPU that
  crashes Jupyter should not silently come back. A lease missing from the listing is
  polled once more before it is failed (it may have started just after the listing).
- **Stuck starts** (the bot died mid-claim). A ``starting`` lease is left alone while a
  start may still be running: for ``ready_timeout + starting_grace`` after its grant.
  Once older, if its container runs, the start is completed through
  ``ClaimService.start`` (idempotent: reuses the running container, waits for Jupyter,
  sends the access DM); otherwise it is failed through ``ClaimService.fail`` with a
  clear message. A starting lease whose recorded container exited or vanished is failed
  at once. One process claims each recovery (a ``recover_start`` audit row, written
  under the lease's row lock), so two bot processes never complete one start twice.
- **Approval timeouts.** ``pending_approval`` older than ``approval_timeout`` becomes
  ``denied`` by ``gpubot`` with the reason "approval timed out"; the requester is told.
- **Allocations.** GPU and port allocation rows whose lease is not live are deleted
  (they should never exist; a warning is logged when some do).
- **Owed effects.** Messages that a crashed (or failing) process committed to but never
  acknowledged are sent again (``resume``, see lifecycle.py); the containers of those
  ended leases are removed by the orphan step above.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import CursorResult, and_, delete, exists, func, insert, or_, select
from sqlalchemy.orm import Session

from bot.db.tables import audit, gpu_allocations, leases, port_allocations
from bot.domain.lease import LIVE, SYSTEM_ACTOR, Lease, LeaseStatus
from bot.ports import ContainerState, ContainerStatus, ManagedContainer
from bot.services.lifecycle import (
    ACCESS,
    APPROVAL_TIMEOUT,
    APPROVAL_TIMEOUT_REASON,
    CLAIM_FAILED,
    CONTAINER_DIED,
    DONE,
    EXPIRE,
    KINDS,
    REMIND,
    SYSTEM,
    Effect,
    state_from_json,
)

if TYPE_CHECKING:
    from bot.services.lifecycle import LifecycleService

log = logging.getLogger(__name__)
RECOVER = "recover_start"


@dataclass
class ReconcileReport:
    orphans_stopped: int = 0
    died: int = 0
    starts_completed: int = 0
    starts_failed: int = 0
    approvals_timed_out: int = 0
    allocations_repaired: int = 0
    effects_resumed: int = 0
    failed_steps: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        """True when the run changed or failed something (worth an INFO log line)."""
        return any(value for value in vars(self).values())


class Reconciler:
    def __init__(self, lifecycle: LifecycleService) -> None:
        self.lc = lifecycle
        self.d = lifecycle.d

    def run(self) -> ReconcileReport:
        report = ReconcileReport()
        for name, step in (("containers", self.containers), ("approvals", self.approvals),
                           ("allocations", self.allocations), ("effects", self.resume)):
            try:
                step(report)
            except Exception:
                log.exception("reconcile step %r failed; the next run retries it", name)
                report.failed_steps.append(name)
        return report

    # ------------------------------------------------------------- containers
    def containers(self, report: ReconcileReport) -> None:
        d = self.d
        try:
            listed = d.runtime.list_managed()  # first: see the module docstring
        except Exception:  # never read "cannot list" as "all gone"
            log.exception("cannot list the managed containers; container checks skipped")
            report.failed_steps.append("list_managed")
            return
        by_lease: dict[int, ManagedContainer] = {c.lease_id: c for c in listed}
        grant = (select(func.min(gpu_allocations.c.allocated_at))
                 .where(gpu_allocations.c.lease_id == leases.c.id).scalar_subquery()
                 .label("granted_at"))
        here = or_(leases.c.host.is_(None), leases.c.host == d.config.host)
        with d.db.transaction() as session:  # plain ids: this runs over every live lease
            live = set(session.scalars(select(leases.c.id).where(leases.c.status.in_(LIVE))))
            active_here = session.scalars(select(leases.c.id).where(
                leases.c.status == LeaseStatus.ACTIVE, here)).all()
            starting = session.execute(select(
                leases.c.id, leases.c.created_at, leases.c.container_id, grant).where(
                leases.c.status == LeaseStatus.STARTING, here)).all()

        for container in listed:
            if container.lease_id not in live:
                self._each(report, "orphans_stopped", d.runtime.stop, container.lease_id)
        dead: dict[int, ContainerState] = {}
        for lease_id in active_here:
            state = by_lease[lease_id].state if lease_id in by_lease else None
            if state is None:  # not listed: confirm before failing it
                state = self._each(report, "", d.runtime.poll, lease_id)
            if state is None:
                continue
            if state.status in (ContainerStatus.EXITED, ContainerStatus.GONE):
                dead[lease_id] = state
        report.died += len(self.lc.fail_dead(dead))
        self._stuck_starts(report, starting, by_lease)

    def _stuck_starts(self, report: ReconcileReport, starting: Sequence[Any],
                      by_lease: dict[int, ManagedContainer]) -> None:
        """``starting``: this host's starting leases (id, created_at, container_id,
        granted_at)."""
        d, now = self.d, self.d.clock.now()
        patience = d.config.ready_timeout + self.lc.starting_grace
        plans: dict[int, str | None] = {}  # lease id -> failure reason, None: complete it
        for row in starting:
            container = by_lease.get(row.id)
            state = container.state if container else None
            if state is None and row.container_id:  # created after the listing? ask again
                state = self._each(report, "", d.runtime.poll, row.id)
                if state is None:
                    continue
            state = state or ContainerState(ContainerStatus.GONE)
            if row.container_id and state.status in (ContainerStatus.EXITED,
                                                     ContainerStatus.GONE):
                plans[row.id] = _start_died(state)
            elif (row.granted_at or row.created_at) <= now - patience:
                plans[row.id] = None if state.status is ContainerStatus.RUNNING else (
                    "Your environment did not come up in time (gpubot was restarted while "
                    "starting it). Nothing is running and the GPU is free again; try "
                    "`/gpu claim` again.")
        for lease_id in self._claim_recoveries(list(plans), now=now, patience=patience):
            reason = plans[lease_id]
            if reason is None:
                lease = self._each(report, "", self.lc.claims.start, lease_id)
                key = "starts_completed" if lease and lease.status is LeaseStatus.ACTIVE \
                    else "starts_failed"
                setattr(report, key, getattr(report, key) + 1)
            else:
                self._each(report, "starts_failed", self.lc.claims.fail, lease_id, reason)

    def _claim_recoveries(self, ids: list[int], *, now: datetime, patience: Any) -> list[int]:
        """Lock the leases, re-check them, and take each recovery at most once per
        ``patience`` across all bot processes (a ``recover_start`` audit row)."""
        if not ids:
            return []

        def work(session: Session) -> list[int]:
            locked = session.scalars(select(leases.c.id).where(
                leases.c.id.in_(ids), leases.c.status == LeaseStatus.STARTING)
                .order_by(leases.c.id).with_for_update(skip_locked=True)).all()
            taken = set(session.scalars(select(audit.c.lease_id).where(
                audit.c.lease_id.in_(locked), audit.c.action == RECOVER,
                audit.c.at > now - patience)))
            mine = [i for i in locked if i not in taken]
            if mine:
                session.execute(insert(audit), [
                    {"at": now, "actor": SYSTEM, "action": RECOVER, "lease_id": i} for i in mine])
            return mine

        return self.d.db.run(work)

    # -------------------------------------------------------------- approvals
    def approvals(self, report: ReconcileReport) -> None:
        now = self.d.clock.now()
        due = and_(leases.c.status == LeaseStatus.PENDING_APPROVAL,
                   leases.c.created_at <= now - self.d.config.approval_timeout)

        def decide(lease: Lease) -> Effect | None:
            if lease.status is not LeaseStatus.PENDING_APPROVAL:
                return None
            lease.transition(LeaseStatus.DENIED, at=now)
            lease.decision_by = SYSTEM_ACTOR
            lease.decision_reason = APPROVAL_TIMEOUT_REASON
            return Effect(APPROVAL_TIMEOUT, lease)

        report.approvals_timed_out += self.lc.sweep(due, decide, now=now)

    # ------------------------------------------------------------ allocations
    def allocations(self, report: ReconcileReport) -> None:
        def work(session: Session) -> int:
            count = 0
            for table in (gpu_allocations, port_allocations):
                ended = exists().where(leases.c.id == table.c.lease_id,
                                       leases.c.status.not_in(LIVE))
                result = session.execute(delete(table).where(ended))
                count += result.rowcount if isinstance(result, CursorResult) else 0
            return count

        repaired = self.d.db.run(work)
        if repaired:
            log.warning("deleted %d allocation row(s) of leases that are not live", repaired)
        report.allocations_repaired += repaired

    # ---------------------------------------------------------- owed effects
    def resume(self, report: ReconcileReport) -> None:
        """Redo effects whose intent has no later ``.done`` row (see lifecycle.py)."""
        lc, now = self.lc, self.d.clock.now()
        a, done = audit.alias("a"), audit.alias("d")
        pending = (select(a.c.lease_id, a.c.action, a.c.detail).where(
            a.c.actor == SYSTEM, a.c.action.in_(KINDS), a.c.at <= now - lc.retry_after,
            a.c.at >= now - lc.horizon - lc.retry_after,
            ~exists().where(done.c.lease_id == a.c.lease_id,
                            done.c.action == a.c.action + DONE, done.c.id > a.c.id))
            .order_by(a.c.id).limit(lc.batch_size))  # re-evaluated: ``now`` is fixed

        def work(session: Session) -> tuple[int, int, list[Effect]]:
            rows = session.execute(pending).all()
            ids = {r.lease_id for r in rows}
            if not ids:
                return 0, 0, []
            locked = {lease.id: lease for lease in session.scalars(
                select(Lease).where(leases.c.id.in_(ids)).order_by(leases.c.id)
                .with_for_update(skip_locked=True))}
            owed: dict[tuple[int, str], str | None] = {}  # re-read after the lock
            for row in session.execute(pending.where(a.c.lease_id.in_(locked))):
                owed[(row.lease_id, row.action)] = row.detail
            effects = [Effect(kind, locked[i], state_from_json(detail)
                              if kind == CONTAINER_DIED else None, redo=True)
                       for (i, kind), detail in owed.items() if self._still_owed(
                           kind, locked[i], now)]
            if owed:  # close the old intents, then re-issue those still owed
                session.execute(insert(audit), [
                    {"at": now, "actor": SYSTEM, "action": kind + DONE, "lease_id": i,
                     "detail": "retrying"} for (i, kind) in owed])
            if effects:
                session.execute(insert(audit), [
                    {"at": now, "actor": SYSTEM, "action": e.kind, "lease_id": e.lease.id,
                     "detail": owed[(e.lease.id or 0, e.kind)]} for e in effects])
            return len(rows), len(owed), effects

        while True:
            seen, closed, effects = self.d.db.run(work)
            for effect in effects:
                log.warning("lease %s: redoing the unacknowledged %s effect",
                            effect.lease.id, effect.kind)
            report.effects_resumed += lc.perform(effects)
            if not closed or seen < lc.batch_size:  # done, or the rest is locked elsewhere
                return

    def _still_owed(self, kind: str, lease: Lease, now: datetime) -> bool:
        if kind == ACCESS:  # the access DM of a lease that is still running
            return lease.status is LeaseStatus.ACTIVE
        if kind == REMIND:
            return (lease.status is LeaseStatus.ACTIVE and lease.expires_at is not None
                    and lease.expires_at > now)
        wanted = {EXPIRE: LeaseStatus.EXPIRED, CONTAINER_DIED: LeaseStatus.FAILED,
                  CLAIM_FAILED: LeaseStatus.FAILED, APPROVAL_TIMEOUT: LeaseStatus.DENIED}[kind]
        return (lease.status is wanted and lease.ended_at is not None
                and lease.ended_at >= now - self.lc.horizon)

    # ------------------------------------------------------------------ util
    @staticmethod
    def _each(report: ReconcileReport, counter: str, action: Any, *args: Any) -> Any:
        """One lease's repair; its failure is logged and does not stop the others."""
        try:
            result = action(*args)
        except Exception:
            log.exception("reconcile: %s%s failed", getattr(action, "__name__", action), args)
            return None
        if counter:
            setattr(report, counter, getattr(report, counter) + 1)
        return result


def _start_died(state: ContainerState) -> str:
    if state.status is ContainerStatus.GONE:
        what = "disappeared"
    elif state.oom_killed:
        what = "ran out of memory"
    else:
        what = "stopped" + (f" (exit code {state.exit_code})" if state.exit_code is not None
                            else "")
    return (f"Your Jupyter container {what} while it was starting. The GPU is free again; "
            f"try `/gpu claim` again, and tell an admin if it keeps happening.")
