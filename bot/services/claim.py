"""Claim → grant (GPU, port, password) → container → ready → active.

The grant is one transaction: the lease row, its GPU and port allocation rows and its
encrypted password commit together or not at all. Starting the container happens after
that commit, outside any transaction; every step re-reads the lease under a row lock,
so a release that lands while the container starts wins, and a failure at any step
ends the lease as failed with the reason (its container is stopped by that ending).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from bot.crashpoints import crashpoint
from bot.db.engine import Session
from bot.db.repo import LeaseRepo
from bot.domain import allocation
from bot.domain.errors import ContainerStartError, NoGpuFree, PortInUse
from bot.domain.gpus import describe_gpus
from bot.domain.queue import could_ever_fit
from bot.domain.lease import SYSTEM_ACTOR, EndReason, Lease, LeaseStatus
from bot.ports import ContainerSpec
from bot.security import hash_jupyter_password
from bot.services.ending import AuditAs, Ending, LeaseEnder
from bot.services.environments import chosen, image_of
from bot.services.grant import Granter
from bot.services.keys import ssh_fields
from bot.services.outbox import Effect, EffectKind, Outbox
from bot.services.queue import NeverFits, QueueService, never_fits_message
from bot.services.resources import Resources

log = logging.getLogger(__name__)
PORT_ATTEMPTS = 3  # ports tried when something outside gpubot listens on them


class ClaimService:
    def __init__(self, res: Resources, granter: Granter, outbox: Outbox,
                 ender: LeaseEnder, queue: QueueService) -> None:
        self.res, self.granter, self.outbox, self.ender = res, granter, outbox, ender
        self.queue = queue

    # ------------------------------------------------------------------ claim
    def claim(self, *, user_id: str, duration: timedelta, gpu_count: int = 1,
              model: str | None = None, channel_id: str | None = None,
              environment: str | None = None) -> Lease:
        """Create the lease: granted at once (status ``starting``; call ``start``
        next), ``queued`` when no GPU that fits is free (or others wait already), or
        ``pending_approval`` when the policy wants an admin. Raises a DomainError (limit,
        bounds, a request no server could ever satisfy) and then nothing is written."""
        res, now = self.res, self.res.clock.now()
        needs_approval = res.policy.needs_approval(duration=duration, gpu_count=gpu_count)
        gpus = res.inventory.list_gpus()
        allocation.require_known_model(gpus, model)  # a typo is refused, never waited for
        env = chosen(res.config, environment)  # so is an unknown environment
        if not could_ever_fit(gpus, count=gpu_count, model=model):
            raise NeverFits(never_fits_message(gpus, count=gpu_count, model=model))

        def work(session: Session) -> Lease:
            repo = LeaseRepo(session)
            repo.lock_user(user_id, now=now)
            low, high = res.config.uid_range
            repo.ensure_uid(user_id, low=low, high=high)
            res.policy.check_claim(duration=duration, gpu_count=gpu_count,
                                   open_leases=len(repo.open_for_user(user_id)))
            status = LeaseStatus.PENDING_APPROVAL if needs_approval else LeaseStatus.STARTING
            lease = Lease(user_id=user_id, duration=duration, created_at=now,
                          gpu_count=gpu_count, gpu_model=model, status=status,
                          channel_id=channel_id, environment=env.name if env else None)
            if needs_approval:
                repo.add(lease)
            elif self.queue.has_waiting(session):  # behind those who came first
                self.queue.enqueue(session, lease, gpus)
            else:
                try:
                    with session.begin_nested():  # a refused grant writes nothing
                        self.granter.grant(repo, lease, gpus, now=now)  # adds it once granted
                except NoGpuFree:
                    lease.id = None  # its row, if a race had added it, rolled back with it
                    self.queue.enqueue(session, lease, gpus)
            repo.audit(at=now, actor=user_id, action="claim", lease_id=lease.id,
                       detail=f"{duration} x{gpu_count}{' ' + model if model else ''}")
            return lease

        lease = res.db.run(work)
        crashpoint("claim.after_lease_row")
        if needs_approval:
            res.notifier.approval_requested(lease)
        elif lease.status is LeaseStatus.QUEUED:
            self.queue.kick()  # it may fit behind a request that does not
        return lease

    # ------------------------------------------------------------------ start
    def start(self, lease_id: int) -> Lease:
        """Start a granted lease's container and make it active once Jupyter answers;
        the access DM follows through the outbox. Safe to call again for the same lease
        (after a crash, by the reconciler)."""
        res = self.res
        with res.db.transaction() as session:
            repo = LeaseRepo(session)
            lease, uid = repo.get(lease_id), repo.uid_of_lease(lease_id)
        if lease.status is not LeaseStatus.STARTING:
            return lease
        password = res.vault.decrypt(lease.password_token or "")
        res.notifier.progress(lease, f"Starting your environment on {self._describe(lease)}…")
        with self._heartbeat(lease_id):
            return self._start(lease, password, uid)

    @contextmanager
    def _heartbeat(self, lease_id: int) -> Iterator[None]:
        """While this process starts the lease, say so every ``start_heartbeat``: the
        reconciler never fails a start whose owner is alive (a long image pull)."""
        stop, every = threading.Event(), self.res.config.start_heartbeat.total_seconds()

        def beat() -> None:
            while True:
                try:
                    self.res.db.run(lambda s: LeaseRepo(s).heartbeat(
                        lease_id, now=self.res.clock.now()))
                except Exception:  # a missed beat only makes the reconciler look sooner
                    log.warning("lease %s: start heartbeat failed", lease_id, exc_info=True)
                if stop.wait(every):
                    return

        thread = threading.Thread(target=beat, name=f"gpubot-start-{lease_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _start(self, lease: Lease, password: str, uid: int | None) -> Lease:
        res, lease_id = self.res, lease.id or 0
        try:
            for attempt in range(1, PORT_ATTEMPTS + 1):
                try:
                    handle = res.runtime.start(
                        ContainerSpec(lease_id=lease_id, user_id=lease.user_id,
                                      gpu_uuids=lease.gpu_uuids, port=lease.port or 0,
                                      password_hash=hash_jupyter_password(password),
                                      image=image_of(res.config, lease.environment),
                                      environment=lease.environment,
                                      time_limit=lease.duration,
                                      **({"uid": uid} if uid is not None else {}),
                                      **ssh_fields(res, lease, password)),
                        on_progress=lambda text: res.notifier.progress(lease, text))
                    break
                except PortInUse:
                    moved = self._move_port(lease_id) if attempt < PORT_ATTEMPTS else None
                    if moved is None:
                        raise
                    log.warning("lease %s: port %s is taken outside gpubot; trying %s",
                                lease_id, lease.port, moved.port)
                    lease = moved
            if self._record(lease_id, container_id=handle.container_id) is None:
                return self._abandon(lease_id)
            crashpoint("claim.after_start")
            address = res.runtime.wait_ready(handle, port=lease.port or 0,
                                             timeout=res.config.ready_timeout)
            active = self._record(lease_id, active=True, address=address)
            if active is None:
                return self._abandon(lease_id)
        except ContainerStartError as exc:
            log.warning("lease %s failed to start: %s (%s)", lease_id, exc.message, exc.detail)
            return self.fail(lease_id, exc.message)
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("lease %s: unexpected error while starting [ref %s]", lease_id, ref)
            return self.fail(lease_id, f"An unexpected error stopped the start (ref {ref}).")
        return active

    def _move_port(self, lease_id: int) -> Lease | None:
        """Give a starting lease other ports (the least recently used ones); the ones it
        had were marked used when granted, so they rest. None if it no longer starts."""
        def move(repo: LeaseRepo, lease: Lease, now: datetime) -> None:
            self.granter.reallocate_ports(repo, lease, now=now)  # sshd's too, if any

        return self._while_starting(lease_id, move)

    def _record(self, lease_id: int, *, container_id: str | None = None,
                active: bool = False, address: str | None = None) -> Lease | None:
        """Write progress if the lease is still starting and return it; None if it was
        released (or otherwise ended) meanwhile. Becoming active owes the access DM."""
        def record(repo: LeaseRepo, lease: Lease, now: datetime) -> None:
            if container_id:
                lease.container_id = container_id
            if active:
                lease.transition(LeaseStatus.ACTIVE, at=now)
                lease.address = address  # the node it runs on (Slurm); None: this host
                lease.started_at = now
                lease.expires_at = now + lease.duration
                repo.audit(at=now, actor=SYSTEM_ACTOR, action="active", lease_id=lease_id)
                route = [Effect(EffectKind.ROUTE_ADD, lease)] if lease.route_label else []
                self.outbox.owe(repo.s, [*route, Effect(EffectKind.ACCESS, lease)])

        return self._while_starting(lease_id, record)

    def _while_starting(self, lease_id: int,
                        change: Callable[[LeaseRepo, Lease, datetime], None]) -> Lease | None:
        """``change`` the lease under its row lock if it is still starting (a release that
        landed meanwhile wins); the lease, or None when it no longer starts."""
        now = self.res.clock.now()
        with self.res.db.transaction() as session:
            repo = LeaseRepo(session)
            lease = repo.get(lease_id, lock=True)
            if lease.status is not LeaseStatus.STARTING:
                return None
            change(repo, lease, now)
        return lease

    def _abandon(self, lease_id: int) -> Lease:
        """The lease left ``starting`` while we started its container. If it ended
        (released meanwhile), remove the container; if it is live, a concurrent
        ``start`` (the reconciler recovering it) finished first and owns it."""
        with self.res.db.transaction() as session:
            lease = LeaseRepo(session).get(lease_id)
        if not lease.status.live:
            self.res.runtime.stop(lease_id)
        return lease

    def fail(self, lease_id: int, reason: str) -> Lease:
        """End a live lease as failed: its container goes, its GPU and port are freed,
        its holder is told why."""
        now = self.res.clock.now()
        with self.res.db.transaction() as session:
            lease = LeaseRepo(session).get(lease_id, lock=True)
            if lease.status.live:
                self.ender.end(session, [Ending(lease, LeaseStatus.FAILED,
                                                EndReason.START_FAILED,
                                                EffectKind.CLAIM_FAILED, reason)],
                               now=now, audit=AuditAs(SYSTEM_ACTOR, "failed"))
        return lease

    def _describe(self, lease: Lease) -> str:
        return describe_gpus(lease.gpu_uuids, self.res.inventory.list_gpus())
