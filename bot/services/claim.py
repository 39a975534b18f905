"""Claim → grant (GPU, port, password) → container → ready → active.

The grant is one transaction: the lease row, its GPU and port allocation rows and its
encrypted password commit together or not at all. Starting the container happens after
that commit, outside any transaction; every step re-reads the lease under a row lock,
so a release that lands while the container starts wins, and a failure at any step
stops the container and marks the lease failed with the reason.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot.db.repo import LeaseRepo
from bot.domain import allocation
from bot.domain.errors import ContainerStartError, DomainError, NoGpuFree
from bot.domain.gpus import GpuInfo
from bot.domain.lease import Lease, LeaseStatus
from bot.crashpoints import crashpoint
from bot.ports import AccessInfo, ContainerSpec
from bot.security import generate_password, hash_jupyter_password
from bot.services.deps import Deps

log = logging.getLogger(__name__)
ACCESS_INTENT = "access"  # an audit intent: the access DM is owed (see lifecycle.py)
FAILED_INTENT = "claim_failed"  # an audit intent: the "could not start" DM is owed


class ClaimService:
    def __init__(self, deps: Deps) -> None:
        self.d = deps
        self._reported_busy: dict[str, datetime] = {}

    # ------------------------------------------------------------------ claim
    def claim(self, *, user_id: str, duration: timedelta, gpu_count: int = 1,
              model: str | None = None, channel_id: str | None = None) -> Lease:
        """Create the lease: granted at once (status ``starting``; call ``start``
        next), or ``pending_approval`` when the policy wants an admin. Raises a
        DomainError (limit, bounds, no GPU free) and then nothing is written."""
        d, now = self.d, self.d.clock.now()
        needs_approval = d.policy.needs_approval(duration=duration, gpu_count=gpu_count)
        gpus = [] if needs_approval else d.inventory.list_gpus()

        def work(session: Session) -> Lease:
            repo = LeaseRepo(session)
            repo.lock_user(user_id, now=now)
            d.policy.check_claim(duration=duration, gpu_count=gpu_count,
                                 open_leases=len(repo.open_for_user(user_id)))
            status = LeaseStatus.PENDING_APPROVAL if needs_approval else LeaseStatus.STARTING
            lease = Lease(user_id=user_id, duration=duration, created_at=now,
                          gpu_count=gpu_count, gpu_model=model, status=status,
                          channel_id=channel_id)
            if needs_approval:
                repo.add(lease)
            else:
                self.grant(repo, lease, gpus, now=now)  # adds it once a GPU is free
            repo.audit(at=now, actor=user_id, action="claim", lease_id=lease.id,
                       detail=f"{duration} x{gpu_count}{' ' + model if model else ''}")
            return lease

        lease = d.db.run(work)
        crashpoint("claim.after_lease_row")
        if needs_approval:
            d.notifier.approval_requested(lease)
        return lease

    def grant(self, repo: LeaseRepo, lease: Lease, gpus: Sequence[GpuInfo], *,
              now: datetime) -> None:
        """Give ``lease`` its GPU(s), port and password inside the caller's transaction;
        a new lease (no id yet) is added only then, so a refusal writes nothing.

        The allocation rows' primary keys are the arbiter: when a concurrent grant took
        a chosen GPU first, the insert is refused, we re-read what is taken and choose
        again; so the loop ends after at most one round per GPU."""
        cfg = self.d.config
        repo.serialize_grants(cfg.host)
        taken = repo.taken_gpus()
        self._report_foreign_use(gpus, taken, now)

        def choose(taken: set[str], last: Mapping[str, datetime] | None = None
                   ) -> list[GpuInfo] | None:
            return allocation.choose(gpus, count=lease.gpu_count, taken=taken,
                                     busy_memory_bytes=cfg.busy_memory_bytes,
                                     model=lease.gpu_model, last_leased=last)

        last: Mapping[str, datetime] | None = None  # read once a grant is possible
        for _ in range(len(gpus) + 1):
            chosen = choose(taken, last)
            if chosen is None:
                raise NoGpuFree(_no_gpu_message(gpus, taken, lease,
                                                 cfg.busy_memory_bytes))
            if last is None:  # the same candidates, now least recently leased first
                last = repo.last_leased(g.uuid for g in gpus)
                chosen = choose(taken, last) or chosen
            if lease.id is None:
                repo.add(lease)
            uuids = sorted(g.uuid for g in chosen)  # one lock order for all grants
            if repo.try_allocate_gpus(lease, uuids, host=chosen[0].host, now=now):
                break
            taken |= repo.taken_gpus() | set(uuids)
        else:  # pragma: no cover - each round removes at least one candidate
            raise NoGpuFree("No GPU is free right now; try again in a moment.")
        lease.host = chosen[0].host
        lease.gpu_uuids = tuple(uuids)
        lease.port = self._allocate_port(repo, lease, now)
        lease.container_name = f"gpubot-{lease.id}"
        lease.password_token = self.d.vault.encrypt(generate_password())

    def _allocate_port(self, repo: LeaseRepo, lease: Lease, now: datetime) -> int:
        assert lease.host is not None
        low, high = self.d.config.port_range
        taken = repo.taken_ports(lease.host)
        for port in range(low, high + 1):
            if port not in taken and repo.try_allocate_port(lease, port, host=lease.host,
                                                            now=now):
                return port
        raise DomainError("Every port in GPUBOT_PORT_RANGE is in use; ask an admin to "
                          "widen it.")

    def _report_foreign_use(self, gpus: Sequence[GpuInfo], taken: set[str],
                            now: datetime) -> None:
        """Someone runs on a GPU outside any lease: never hand it out, tell the admins
        (at most once an hour per GPU)."""
        for gpu in allocation.busy_outside_leases(gpus, taken=taken):
            last = self._reported_busy.get(gpu.uuid)
            if last is not None and now - last < timedelta(hours=1):
                continue
            self._reported_busy[gpu.uuid] = now
            pids = ", ".join(str(p.pid) for p in gpu.processes)
            text = (f"GPU {gpu.index} ({gpu.name}, {gpu.uuid}) on {gpu.host} runs processes "
                    f"outside any lease (PIDs {pids}); gpubot will not hand it out.")
            log.warning(text)
            self.d.notifier.admin_alert(text)

    # ------------------------------------------------------------------ start
    def start(self, lease_id: int) -> Lease:
        """Start a granted lease's container and make it active once Jupyter answers.
        Safe to call again for the same lease (after a crash, by the reconciler)."""
        d = self.d
        with d.db.transaction() as session:
            lease = LeaseRepo(session).get(lease_id)
        if lease.status is not LeaseStatus.STARTING:
            return lease
        password = d.vault.decrypt(lease.password_token or "")
        d.notifier.progress(lease, f"Starting your environment on {self._describe(lease)}…")
        try:
            handle = d.runtime.start(
                ContainerSpec(lease_id=lease_id, user_id=lease.user_id,
                              gpu_uuids=lease.gpu_uuids, port=lease.port or 0,
                              password_hash=hash_jupyter_password(password)),
                on_progress=lambda text: d.notifier.progress(lease, text))
            if self._record(lease_id, container_id=handle.container_id) is None:
                return self._abandon(lease_id)
            crashpoint("claim.after_start")
            d.runtime.wait_ready(handle, port=lease.port or 0, timeout=d.config.ready_timeout)
            active = self._record(lease_id, active=True)
            if active is None:
                return self._abandon(lease_id)
        except ContainerStartError as exc:
            log.warning("lease %s failed to start: %s (%s)", lease_id, exc.message, exc.detail)
            return self.fail(lease_id, exc.message)
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("lease %s: unexpected error while starting [ref %s]", lease_id, ref)
            return self.fail(lease_id, f"An unexpected error stopped the start (ref {ref}).")
        crashpoint("claim.before_dm")
        d.notifier.access_ready(active, AccessInfo(url=d.config.url(active.port or 0),
                                                   password=password))
        self._confirm(ACCESS_INTENT, lease_id)
        return active

    def _record(self, lease_id: int, *, container_id: str | None = None,
                active: bool = False) -> Lease | None:
        """Write progress if the lease is still starting and return it; None if it was
        released (or otherwise ended) meanwhile."""
        now = self.d.clock.now()
        with self.d.db.transaction() as session:
            repo = LeaseRepo(session)
            lease = repo.get(lease_id, lock=True)
            if lease.status is not LeaseStatus.STARTING:
                return None
            if container_id:
                lease.container_id = container_id
            if active:
                lease.transition(LeaseStatus.ACTIVE, at=now)
                lease.started_at = now
                lease.expires_at = now + lease.duration
                repo.audit(at=now, actor="system", action="active", lease_id=lease_id)
                repo.audit(at=now, actor="system", action=ACCESS_INTENT, lease_id=lease_id)
        return lease

    def _abandon(self, lease_id: int) -> Lease:
        """The lease left ``starting`` while we started its container. If it ended
        (released meanwhile), remove the container; if it is live, a concurrent
        ``start`` (the reconciler recovering it) finished first and owns it."""
        with self.d.db.transaction() as session:
            lease = LeaseRepo(session).get(lease_id)
        if not lease.status.live:
            self.d.runtime.stop(lease_id)
        return lease

    def fail(self, lease_id: int, reason: str) -> Lease:
        """Stop whatever was started, free the GPU and port, tell the user why."""
        d, now = self.d, self.d.clock.now()
        try:
            d.runtime.stop(lease_id)
        except Exception:  # the reconciler removes it later; the lease must still end
            log.exception("lease %s: could not remove its container", lease_id)
        with d.db.transaction() as session:
            repo = LeaseRepo(session)
            lease = repo.get(lease_id, lock=True)
            if not lease.status.live:
                return lease
            lease.transition(LeaseStatus.FAILED, at=now)
            lease.failure_reason = reason
            repo.free_allocations(lease_id)
            repo.audit(at=now, actor="system", action="failed", lease_id=lease_id,
                       detail=reason)
            repo.audit(at=now, actor="system", action=FAILED_INTENT, lease_id=lease_id)
        d.notifier.claim_failed(lease, reason)
        self._confirm(FAILED_INTENT, lease_id)
        return lease

    def _confirm(self, intent: str, lease_id: int) -> None:
        """The DM an intent promised was sent: the reconciler need not send it again."""
        with self.d.db.transaction() as session:
            LeaseRepo(session).audit(at=self.d.clock.now(), actor="system",
                                     action=intent + ".done", lease_id=lease_id)

    def _describe(self, lease: Lease) -> str:
        by_uuid = {g.uuid: g for g in self.d.inventory.list_gpus()}
        names = [f"GPU {by_uuid[u].index} ({by_uuid[u].name})" if u in by_uuid else u
                 for u in lease.gpu_uuids]
        return ", ".join(names) or "a GPU"


def _no_gpu_message(gpus: Sequence[GpuInfo], taken: set[str], lease: Lease,
                    busy_memory_bytes: int) -> str:
    model = f" {lease.gpu_model}" if lease.gpu_model else ""
    matching = [g for g in gpus if allocation.matches_model(g, lease.gpu_model)]
    if lease.gpu_model and not matching:
        return (f"There is no{model} GPU here. `/gpu status` lists the models.")
    leased = sum(1 for g in matching if g.uuid in taken)
    busy = sum(1 for g in matching if g.uuid not in taken and g.healthy
               and not allocation.is_idle(g, busy_memory_bytes=busy_memory_bytes))
    sick = sum(1 for g in matching if not g.healthy)
    detail = ", ".join(f"{n} {what}" for n, what in ((leased, "leased"), (busy, "busy outside "
                       "gpubot"), (sick, "unhealthy")) if n)
    want = f"{lease.gpu_count}{model} GPUs" if lease.gpu_count > 1 else f"a{model} GPU"
    return (f"No GPU free for {want} right now ({len(matching)} in all"
            f"{': ' + detail if detail else ''}). `/gpu status` shows when leases end.")
