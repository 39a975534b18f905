"""Idle reclaim and usage sampling, every tick (the rules: bot.domain.idle).

A tick reads the GPUs once (NVML), the active leases and the line once (SQL), asks the
Jupyter of each lease whose GPUs look idle how busy it is (in parallel, over its REST
API), then writes every lease's aggregates and every GPU's day row in one statement
each, however many are idle. Reclaim is only for someone waiting: each waiting request
claims the longest-idle lease whose GPUs it could use (one waiter, one lease), and that
lease is warned, then reclaimed through the one way a lease ends, whose capacity-freed
signal grants the waiter.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from bot.db.engine import Session
from bot.db.queue import QueueRepo
from bot.db.repo import LeaseRepo
from bot.db.sweeps import SweepRepo
from bot.db.usage import GpuSample, LeaseSample, UsageRepo
from bot.domain import allocation
from bot.domain import idle as rules_of
from bot.domain.errors import DomainError, LeaseNotFound, NotAllowed
from bot.domain.gpus import GpuInfo
from bot.domain.idle import IdleRules, JupyterActivity, Sample, Step
from bot.domain.lease import EndReason, Lease, LeaseStatus
from bot.ports import JupyterProbe
from bot.services.ending import Ending, LeaseEnder
from bot.services.outbox import Effect, EffectKind, Outbox
from bot.services.resources import Resources

log = logging.getLogger(__name__)
PROBE_WORKERS = 8


@dataclass
class SampleReport:
    sampled: int = 0
    idle: int = 0
    warned: int = 0
    reclaimed: int = 0

    def __bool__(self) -> bool:
        return bool(self.warned or self.reclaimed)


class IdleService:
    def __init__(self, res: Resources, probe: JupyterProbe, outbox: Outbox,
                 ender: LeaseEnder, rules: IdleRules) -> None:
        self.res, self.probe, self.outbox, self.ender, self.rules = res, probe, outbox, ender, rules
        self._pool = ThreadPoolExecutor(max_workers=PROBE_WORKERS, thread_name_prefix="gpubot-idle")
        self._previous: datetime | None = None  # the previous sample, "quiet since"

    # ------------------------------------------------------------------ the tick
    def sample(self) -> SampleReport:
        res, now, report = self.res, self.res.clock.now(), SampleReport()
        gpus = {g.uuid: g for g in res.inventory.list_gpus()}
        since, self._previous = self._previous or now, now

        def read(session: Session) -> tuple[list[Lease], list[Lease]]:
            return UsageRepo(session).active(host=res.config.host), QueueRepo(session).waiting()

        active, waiting = res.db.run(read)
        activity = self._probe([lease for lease in active if self._gpus_idle(lease, gpus)])
        samples = []
        for lease in active:
            utils = [_util(gpus.get(u)) for u in lease.gpu_uuids]
            idle_now = (lease.id in activity and not lease.idle_exempt and rules_of.is_idle(
                Sample(utils, activity[lease.id]), self.rules, since=since))
            lease.idle_since = rules_of.idle_since(lease, idle_now, now=now)
            samples.append(LeaseSample(lease.id or 0, round(sum(u or 0 for u in utils)
                                                             / max(len(utils), 1)),
                                       max((_mem_mib(gpus.get(u)) for u in lease.gpu_uuids),
                                           default=0), idle_now, lease.idle_since))
        report.sampled, report.idle = len(samples), sum(s.idle for s in samples)
        wanted = _wanted(active, waiting, gpus)
        steps = {lease.id: rules_of.next_step(lease, self.rules, now=now,
                                              wanted=lease.id in wanted) for lease in active}
        held = {u for lease in active for u in lease.gpu_uuids}

        def write(session: Session) -> None:
            usage = UsageRepo(session)
            usage.add_samples(samples)
            usage.add_gpu_day(now.date(), [GpuSample(g.uuid, g.host, _util(g) or 0,
                                                     g.uuid in held) for g in gpus.values()])
            acting = {i: step for i, step in steps.items() if step is not Step.NONE}
            if acting:
                self._act(session, acting, now, report)

        res.db.run(write)
        return report

    def _act(self, session: Session, steps: dict[int | None, Step], now: datetime,
             report: SampleReport) -> None:
        """Warn and reclaim, in bulk: one locked read, one owed write, one ending (the
        statements do not grow with how many leases are acted on)."""
        warnings, endings = [], []
        for lease in SweepRepo(session).lock_active([i or 0 for i in steps], wait=True):
            if lease.idle_since is None or lease.idle_exempt:
                continue  # changed meanwhile ("I'm still using it", an admin's exemption)
            step = steps[lease.id]
            if step is Step.WARN and lease.idle_warned_at is None:
                lease.idle_warned_at = now
                at = rules_of.reclaim_at(lease, self.rules, warned_at=now)
                warnings.append(Effect(EffectKind.IDLE_WARNING, lease, at.isoformat()))
            elif step is Step.RECLAIM:
                endings.append(Ending(lease, LeaseStatus.EXPIRED, EndReason.IDLE,
                                      EffectKind.IDLE_RECLAIMED))
                log.info("lease %s reclaimed: idle since %s while someone waits", lease.id,
                         lease.idle_since)
        self.outbox.owe(session, warnings)
        self.ender.end(session, endings, now=now)
        report.warned += len(warnings)
        report.reclaimed += len(endings)

    def _gpus_idle(self, lease: Lease, gpus: dict[str, GpuInfo]) -> bool:
        utils = [_util(gpus.get(u)) for u in lease.gpu_uuids]
        return bool(utils) and all(u is not None and u <= self.rules.util_percent for u in utils)

    def _probe(self, leases: list[Lease]) -> dict[int | None, JupyterActivity | None]:
        """Each lease's Jupyter, asked in parallel (the tick waits for the slowest)."""
        def ask(lease: Lease) -> JupyterActivity | None:
            try:
                password = self.res.vault.decrypt(lease.password_token or "")
            except Exception:  # no password, or a key that is gone: cannot tell
                return None
            return self.probe.activity(lease, password)

        return dict(zip((lease.id for lease in leases), self._pool.map(ask, leases)))

    # ------------------------------------------------------------------ the holder
    def still_using(self, *, user_id: str, lease_id: int) -> Lease:
        """"I'm still using it": idleness counts again only after the snooze."""
        now = self.res.clock.now()
        with self.res.db.transaction() as session:
            lease = LeaseRepo(session).get(lease_id, lock=True)
            if lease.user_id != user_id:
                raise LeaseNotFound(f"You have no lease {lease_id}.")
            if lease.status is not LeaseStatus.ACTIVE:
                raise DomainError(f"Lease {lease.id} is {lease.status.value}; nothing to keep.")
            lease.snoozed_until = now + self.rules.snooze
            lease.idle_since = lease.idle_warned_at = None
            LeaseRepo(session).audit(at=now, actor=user_id, action="still_using",
                                     lease_id=lease.id)
        return lease

    def exempt(self, *, admin_id: str, lease_id: int, exempt: bool = True) -> Lease:
        """An admin keeps a lease out of idle reclaim (or lets it back in)."""
        if not self.res.policy.is_admin(admin_id):
            raise NotAllowed("Only a gpubot admin can exempt a lease from idle reclaim.")
        now = self.res.clock.now()
        with self.res.db.transaction() as session:
            lease = LeaseRepo(session).get(lease_id, lock=True)
            lease.idle_exempt = exempt
            lease.idle_since = lease.idle_warned_at = None
            LeaseRepo(session).audit(at=now, actor=admin_id, action="idle_exempt",
                                     lease_id=lease.id, detail=str(exempt))
        return lease


def _util(gpu: GpuInfo | None) -> int | None:
    return None if gpu is None else gpu.utilization_percent


def _mem_mib(gpu: GpuInfo | None) -> int:
    return 0 if gpu is None or gpu.memory_used_bytes is None else gpu.memory_used_bytes // 2**20


def _wanted(active: list[Lease], waiting: list[Lease], gpus: dict[str, GpuInfo]) -> set[int]:
    """The idle leases someone waits for: each waiting request, in line order, claims the
    longest-idle lease whose GPUs match the model it asked for (one waiter, one lease)."""
    idle = sorted((lease for lease in active if lease.idle_since is not None
                   and not lease.idle_exempt), key=lambda lease: lease.idle_since)  # type: ignore
    wanted: set[int] = set()
    for waiter in sorted(waiting, key=lambda w: (w.queued_at or w.created_at, w.id or 0)):
        for lease in idle:
            if lease.id in wanted:
                continue
            held = [gpus.get(u) for u in lease.gpu_uuids]
            if all(g is not None and allocation.matches_model(g, waiter.gpu_model)
                   for g in held):
                wanted.add(lease.id or 0)
                break
    return wanted

