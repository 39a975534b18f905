"""The fair queue: a claim no free GPU fits waits in line, holding nothing, and is
granted when capacity frees (the order and the anti-starvation rule: bot.domain.queue).

Capacity frees when a lease ends (``LeaseEnder``'s capacity-freed signal, which only
*kicks* a pass, so the thread that ended the lease is not held up by the next start),
and the reconciler runs a pass every minute as well (a GPU back in service, a signal
lost in a crash). A pass locks the waiting rows (``SKIP LOCKED``: two bot processes
never grant one place twice), grants in order what fits, and owes each grant a
``start`` effect: its container starts after the commit, and again after a crash.
"""

from __future__ import annotations

import logging
import threading

from bot.db.engine import Session
from bot.db.queue import QueueRepo
from bot.db.repo import LeaseRepo
from bot.domain import queue as line_rules
from bot.domain.containers import EngineWait
from bot.domain.errors import DomainError, LeaseNotFound
from bot.domain.gpus import GpuInfo
from bot.domain.lease import SYSTEM_ACTOR, EndReason, Lease, LeaseStatus
from bot.services.ending import AuditAs, Ending, LeaseEnder
from bot.services.grant import Granter
from bot.services.outbox import Effect, EffectKind, Outbox
from bot.services.resources import Resources
from bot.services.sweep import sweep

log = logging.getLogger(__name__)


class NeverFits(DomainError):
    """No server could ever satisfy the request: refused, never queued."""


class QueueService:
    def __init__(self, res: Resources, granter: Granter, outbox: Outbox, ender: LeaseEnder,
                 *, background: bool = True) -> None:
        self.res, self.granter, self.outbox, self.ender = res, granter, outbox, ender
        self._background = background  # False: a kick runs the pass in the caller (tests)
        self._kicked = threading.Event()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------- joining it
    def enqueue(self, session: Session, lease: Lease, gpus: list[GpuInfo]) -> None:
        """Put a new (or just-approved) request in line, in the caller's transaction."""
        if not line_rules.could_ever_fit(gpus, count=lease.gpu_count, model=lease.gpu_model):
            raise NeverFits(never_fits_message(gpus, count=lease.gpu_count,
                                               model=lease.gpu_model))
        now = self.res.clock.now()
        if lease.id is None or lease.status is LeaseStatus.STARTING:  # a new request
            lease.status = LeaseStatus.QUEUED
        else:
            lease.transition(LeaseStatus.QUEUED, at=now)
        lease.queued_at = now
        if lease.id is None:
            LeaseRepo(session).add(lease)

    def has_waiting(self, session: Session) -> bool:
        """Someone waits: a new claim joins the line behind them instead of grabbing a
        GPU that frees just now (the pass after its commit grants it if it fits)."""
        return bool(QueueRepo(session).waiting())

    # ----------------------------------------------------------- reading it
    def line(self) -> list[Lease]:
        def read(session: Session) -> list[Lease]:
            repo = QueueRepo(session)
            return line_rules.ordered(repo.waiting(), holders=repo.holders())
        return self.res.db.run(read)

    def place(self, lease_id: int | None) -> int | None:
        return line_rules.place(self.line(), lease_id)

    def engine_line(self) -> list[tuple[Lease, EngineWait]]:
        """Granted leases whose start waits in the engine's own queue (a pending Slurm
        job), in the engine's order; empty when the engine has none or does not answer."""
        try:
            waits = self.res.runtime.waiting()
        except Exception:  # a listing must work while the cluster does not
            log.warning("the engine's queue could not be read", exc_info=True)
            return []
        if not waits:
            return []
        starting = {lease.id: lease for lease in
                    self.res.db.run(lambda s: LeaseRepo(s).with_status(LeaseStatus.STARTING))}
        found = [(starting[i], wait) for i, wait in waits.items() if i in starting]
        return sorted(found, key=lambda pair: (pair[1].place or 0, pair[0].id or 0))

    # ----------------------------------------------------------- leaving it
    def leave(self, *, user_id: str, lease_id: int | None = None) -> Lease:
        """Withdraw a queued request (yours; the only one you have when none is named)."""
        now = self.res.clock.now()
        with self.res.db.transaction() as session:
            mine = [w for w in QueueRepo(session).waiting() if w.user_id == user_id
                    and (lease_id is None or w.id == lease_id)]
            if not mine:
                raise LeaseNotFound("You have no request in the queue"
                                    + (f" with lease {lease_id}." if lease_id else "."))
            if len(mine) > 1:
                raise DomainError(f"You have {len(mine)} requests in the queue ("
                                  + ", ".join(str(w.id) for w in mine) + "); say which one.")
            lease = LeaseRepo(session).get(mine[0].id or 0, lock=True)
            if lease.status is not LeaseStatus.QUEUED:
                raise DomainError(f"Lease {lease.id} is no longer waiting ({lease.status.value}).")
            self.ender.end(session, [Ending(lease, LeaseStatus.RELEASED, EndReason.LEFT_QUEUE)],
                           now=now, audit=AuditAs(user_id, "leave"))
        return lease

    def expire_waiting(self) -> int:
        """End requests that waited longer than the queue timeout; tell their holders."""
        now = self.res.clock.now()
        before = now - self.res.config.queue_timeout

        def end(session: Session, decided: list[tuple[Lease, object]]) -> None:
            self.ender.end(session, [Ending(lease, LeaseStatus.EXPIRED, EndReason.QUEUE_TIMEOUT,
                                            EffectKind.QUEUE_TIMEOUT) for lease, _ in decided],
                           now=now)

        return sweep(self.res.db, lambda repo, limit: repo.claim_stale_queued(
            queued_before=before, limit=limit),
            lambda lease: lease.status is LeaseStatus.QUEUED or None, end,
            batch_size=self.res.config.batch_size)

    # ----------------------------------------------------------- granting it
    def kick(self, _host: str | None = None) -> None:
        """Capacity may have freed: run a pass soon (coalesced; never in the caller's
        thread unless built with ``background=False``)."""
        if not self._background:
            self.grant_waiting()
            return
        self._kicked.set()
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="gpubot-queue",
                                                daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while self._kicked.wait(timeout=5):
            self._kicked.clear()
            try:
                self.grant_waiting()
            except Exception:  # the reconciler's pass retries within a minute
                log.exception("queue pass failed")

    def grant_waiting(self) -> list[Lease]:
        """One pass: grant, in order, every waiting request that fits now."""
        res, now = self.res, self.res.clock.now()
        if not res.db.run(lambda s: QueueRepo(s).waiting()):
            return []  # nobody waits: no inventory read (on Slurm, a job listing)
        gpus = res.inventory.list_gpus()  # outside the transaction: no lock held meanwhile

        def work(session: Session) -> list[Lease]:
            queue = QueueRepo(session)
            waiting = queue.lock_waiting()
            if not waiting:
                return []
            repo, granted = LeaseRepo(session), []
            held = line_rules.Reservations(now=now, reserve_after=res.config.queue_reserve_after)
            for lease in line_rules.ordered(waiting, holders=queue.holders()):
                usable = held.usable(gpus)
                try:
                    with session.begin_nested():  # a refused grant writes nothing
                        self.granter.grant(repo, lease, usable, now=now)
                except DomainError:  # no GPU (or no port) for it now
                    held.missed(lease, usable)
                    continue
                lease.transition(LeaseStatus.STARTING, at=now)
                repo.audit(at=now, actor=SYSTEM_ACTOR, action="dequeue", lease_id=lease.id,
                           detail=f"waited {now - (lease.queued_at or now)}")
                granted.append(lease)
            self.outbox.owe(session, [Effect(EffectKind.START, lease) for lease in granted])
            return granted

        granted = res.db.run(work)
        for lease in granted:
            log.info("lease %s: granted from the queue", lease.id)
        return granted


def never_fits_message(gpus: list[GpuInfo], *, count: int, model: str | None) -> str:
    name = f" {model}" if model else ""
    most = max(line_rules.per_host(gpus, model).values(), default=0)
    return (f"No server here has {count}{name} GPUs (the most on one server is {most}), so "
            f"this request could never be granted; ask for fewer.")
