"""Reconciliation: the database is the truth; the container engine is observed and repaired.

Policies (each step runs on its own; one failing step or lease does not stop the rest):

- **Orphan containers.** A managed container (our labels) whose lease is not live
  (``starting``/``active``) is stopped and removed: ``runtime.stop`` never touches the
  workspace. The engine is listed *before* the leases are read, so a container created
  after a grant is always matched by that grant's committed row.
- **Dead containers of active leases.** An ``active`` lease on this host whose container
  has exited (crash, OOM kill) or is gone (removed by hand) ends as ``failed`` with a
  reason naming the exit code or the OOM kill, and its holder is told. We never restart
  a dead container: the user's process state is lost anyway, and a GPU that crashes
  Jupyter should not silently come back. A lease missing from the listing is polled
  once more before it is failed (it may have started just after the listing).
- **Stuck starts** (the bot died mid-claim). A ``starting`` lease is left alone while a
  start may still be running: for ``ready_timeout + starting_grace`` after its grant or
  the last heartbeat of the process starting it (a long image pull keeps beating).
  Once older, if its container runs, the start is completed through
  ``ClaimService.start`` (idempotent: reuses the running container, waits for Jupyter,
  sends the access DM); otherwise it is failed with a clear message. A starting lease
  whose recorded container exited or vanished is failed at once. One process claims
  each recovery (a ``recover_start`` audit row, under the lease's row lock), so two bot
  processes never complete one start twice.
- **Approval timeouts.** ``pending_approval`` older than ``approval_timeout`` becomes
  ``denied`` by ``gpubot`` with the reason "approval timed out"; the requester is told.
- **Allocations.** GPU rows of leases that are not live are deleted (they should never
  exist; a warning is logged). A port of an ended lease is freed once the engine no
  longer lists its container (its owed stop was lost past the outbox's horizon).
- **Owed effects.** ``Outbox.resume``: what a crashed (or failing) process owed.
- **Proxy routes** (``bot.services.routes``): the proxy serves exactly the active leases'
  routes; others are removed, missing or wrong ones restored.
- **The queue.** Requests past ``GPUBOT_QUEUE_TIMEOUT`` end; then a pass grants what fits
  (a GPU back in service, or a capacity-freed signal lost in a crash).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.db.engine import Session
from bot.db.repo import LeaseRepo
from bot.db.sweeps import StartingRow, SweepRepo
from bot.domain.containers import ContainerState, ContainerStatus, start_died_reason
from bot.domain.lease import SYSTEM_ACTOR, EndReason, Lease, LeaseStatus
from bot.ports import ManagedContainer
from bot.services.claim import ClaimService
from bot.services.effects import APPROVAL_TIMEOUT_REASON
from bot.services.ending import Ending, LeaseEnder
from bot.services.lifecycle import LifecycleJobs
from bot.services.outbox import EffectKind, Outbox
from bot.services.queue import QueueService
from bot.services.resources import Resources
from bot.services.routes import reconcile_routes
from bot.services.sweep import sweep

log = logging.getLogger(__name__)
T = TypeVar("T")
NOT_UP_IN_TIME = ("Your environment did not come up in time (gpubot was restarted while "
                  "starting it). Nothing is running and the GPU is free again; try "
                  "/gpu claim again.")


@dataclass
class ReconcileReport:
    orphans_stopped: int = 0
    died: int = 0
    starts_completed: int = 0
    starts_failed: int = 0
    approvals_timed_out: int = 0
    allocations_repaired: int = 0
    effects_resumed: int = 0
    queue_granted: int = 0
    queue_timed_out: int = 0
    routes_added: int = 0
    routes_removed: int = 0
    failed_steps: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        """True when the run changed or failed something (worth an INFO log line)."""
        return any(value for value in vars(self).values())

    def count(self, counter: str, n: int = 1) -> None:
        setattr(self, counter, getattr(self, counter) + n)


class Reconciler:
    def __init__(self, res: Resources, outbox: Outbox, claims: ClaimService,
                 lifecycle: LifecycleJobs, ender: LeaseEnder, queue: QueueService) -> None:
        self.res, self.outbox, self.claims = res, outbox, claims
        self.lifecycle, self.ender, self.queue = lifecycle, ender, queue

    def run(self) -> ReconcileReport:
        report = ReconcileReport()
        for name, step in (("containers", self.containers), ("approvals", self.approvals),
                           ("allocations", self.allocations), ("effects", self.resume),
                           ("queue", self.waiting), ("routes", self.routes)):
            try:
                step(report)
            except Exception:
                log.exception("reconcile step %r failed; the next run retries it", name)
                report.failed_steps.append(name)
        return report

    # ------------------------------------------------------------- containers
    def containers(self, report: ReconcileReport) -> None:
        res, host = self.res, self.res.config.host
        try:
            listed = res.runtime.list_managed()  # first: see the module docstring
        except Exception:  # never read "cannot list" as "all gone"
            log.exception("cannot list the managed containers; container checks skipped")
            report.failed_steps.append("list_managed")
            return
        by_lease: dict[int, ManagedContainer] = {c.lease_id: c for c in listed}
        with res.db.transaction() as session:  # plain ids: this runs over every live lease
            repo = SweepRepo(session)
            live, active_here = repo.live_ids(), repo.active_ids(host=host)
            starting, port_holders = repo.starting(host=host), repo.ended_port_holders()

        stopped: set[int] = set()
        for container in listed:
            if container.lease_id not in live:
                done, _ = _attempt(res.runtime.stop, container.lease_id)
                if done:
                    stopped.add(container.lease_id)
        report.count("orphans_stopped", len(stopped))
        dead: dict[int, ContainerState] = {}
        for lease_id in active_here:
            state = by_lease[lease_id].state if lease_id in by_lease else None
            if state is None:  # not listed: confirm before failing it
                _, state = _attempt(res.runtime.poll, lease_id)
            if state is not None and state.dead:
                dead[lease_id] = state
        report.count("died", len(self.lifecycle.fail_dead(dead)))
        self._stuck_starts(report, starting, by_lease)
        gone = [i for i in port_holders if i not in by_lease or i in stopped]
        if gone:
            res.db.run(lambda session: LeaseRepo(session).free_ports(gone))
            report.count("allocations_repaired", len(gone))

    def _stuck_starts(self, report: ReconcileReport, starting: Sequence[StartingRow],
                      by_lease: dict[int, ManagedContainer]) -> None:
        res, now = self.res, self.res.clock.now()
        patience = res.config.start_patience
        plans: dict[int, str | None] = {}  # lease id -> failure reason, None: complete it
        for row in starting:
            container = by_lease.get(row.id)
            state = container.state if container else None
            if state is None and row.container_id:  # created after the listing? ask again
                _, state = _attempt(res.runtime.poll, row.id)
                if state is None:
                    continue
            state = state or ContainerState(ContainerStatus.GONE)
            if row.container_id and state.dead:
                plans[row.id] = start_died_reason(state)
            elif row.last_sign_of_life <= now - patience:  # no start is alive for it
                plans[row.id] = None if state.status is ContainerStatus.RUNNING \
                    else NOT_UP_IN_TIME
        mine = res.db.run(lambda session: SweepRepo(session).claim_recoveries(
            list(plans), now=now, patience=patience))
        for lease_id in mine:
            reason = plans[lease_id]
            if reason is None:
                _, lease = _attempt(self.claims.start, lease_id)
                done = lease is not None and lease.status is LeaseStatus.ACTIVE
                report.count("starts_completed" if done else "starts_failed")
            else:
                failed, _ = _attempt(self.claims.fail, lease_id, reason)
                report.count("starts_failed", int(failed))

    # -------------------------------------------------------------- approvals
    def approvals(self, report: ReconcileReport) -> None:
        now = self.res.clock.now()
        before = now - self.res.config.approval_timeout

        def due(lease: Lease) -> bool | None:
            return lease.status is LeaseStatus.PENDING_APPROVAL or None

        def deny(session: Session, decided: list[tuple[Lease, object]]) -> None:
            for lease, _ in decided:
                lease.decision_by = SYSTEM_ACTOR
            self.ender.end(session, [Ending(lease, LeaseStatus.DENIED,
                                            EndReason.APPROVAL_TIMEOUT,
                                            EffectKind.APPROVAL_TIMEOUT,
                                            reason=APPROVAL_TIMEOUT_REASON)
                                     for lease, _ in decided], now=now)

        report.count("approvals_timed_out", sweep(
            self.res.db, lambda repo, limit: repo.claim_stale_approvals(
                created_before=before, limit=limit), due, deny,
            batch_size=self.res.config.batch_size))

    # ------------------------------------------------------------ allocations
    def allocations(self, report: ReconcileReport) -> None:
        repaired = self.res.db.run(lambda s: SweepRepo(s).delete_stale_gpu_allocations())
        if repaired:
            log.warning("deleted %d GPU allocation row(s) of leases that are not live",
                        repaired)
        report.count("allocations_repaired", repaired)

    # ------------------------------------------------------------------ queue
    def waiting(self, report: ReconcileReport) -> None:
        report.count("queue_timed_out", self.queue.expire_waiting())
        report.count("queue_granted", len(self.queue.grant_waiting()))

    # ------------------------------------------------------------------ routes
    def routes(self, report: ReconcileReport) -> None:
        repair = reconcile_routes(self.res)
        report.count("routes_added", repair.added)
        report.count("routes_removed", repair.removed)

    # ---------------------------------------------------------- owed effects
    def resume(self, report: ReconcileReport) -> None:
        report.count("effects_resumed", self.outbox.resume())


def _attempt(action: Callable[..., T], *args: Any) -> tuple[bool, T | None]:
    """One lease's repair: (done, its result). A failure is logged and does not stop
    the repairs of the other leases."""
    try:
        return True, action(*args)
    except Exception:
        log.exception("reconcile: %s%s failed", getattr(action, "__name__", action), args)
        return False, None
