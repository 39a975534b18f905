"""Granting a lease its GPU(s), port and password, inside the caller's transaction.

The allocation rows' primary keys are the arbiter: when a concurrent grant took a chosen
GPU first, the insert is refused, we re-read what is taken and choose again; so the loop
ends after at most one round per GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from bot.db.engine import after_commit
from bot.db.repo import LeaseRepo
from bot.domain import allocation
from bot.domain.errors import DomainError, NoGpuFree
from bot.domain.gpus import GpuInfo
from bot.domain.lease import Lease, container_name
from bot.domain.queue import why_no_gpu
from bot.domain.ssh import host_key
from bot.security import generate_password
from bot.services.routes import new_route_label
from bot.services.resources import Resources

log = logging.getLogger(__name__)
FOREIGN_USE_ALERT_EVERY = timedelta(hours=1)


class Granter:
    def __init__(self, res: Resources) -> None:
        self.res = res
        self._reported_busy: dict[str, datetime] = {}

    def grant(self, repo: LeaseRepo, lease: Lease, gpus: Sequence[GpuInfo], *,
              now: datetime) -> None:
        """Give ``lease`` its GPU(s), port and password; a new lease (no id yet) is added
        only then, so a refusal writes nothing. Raises NoGpuFree."""
        cfg = self.res.config
        repo.serialize_grants(cfg.host)
        taken = repo.taken_gpus()
        self._report_foreign_use(repo, gpus, taken, now)

        def choose(taken: set[str], last: Mapping[str, datetime] | None = None
                   ) -> list[GpuInfo] | None:
            return allocation.choose(gpus, count=lease.gpu_count, taken=taken,
                                     busy_memory_bytes=cfg.busy_memory_bytes,
                                     model=lease.gpu_model, last_leased=last)

        last: Mapping[str, datetime] | None = None  # read once a grant is possible
        for _ in range(len(gpus) + 1):
            chosen = choose(taken, last)
            if chosen is None:
                raise NoGpuFree(why_no_gpu(gpus, taken, lease, cfg.busy_memory_bytes))
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
        lease.port = self.allocate_port(repo, lease, now=now)
        lease.container_name = container_name(lease.id or 0)
        password = generate_password()
        lease.password_token = self.res.vault.encrypt(password)
        if cfg.ssh:  # sshd's port, held by the lease like Jupyter's; its host key's print
            lease.ssh_port = self.allocate_port(repo, lease, now=now)
            lease.host_key_fingerprint = host_key(password, lease.id or 0).fingerprint
        if cfg.proxy_domain:  # its own host name; random, so the lease id is not in it
            lease.route_label = new_route_label()

    def reallocate_ports(self, repo: LeaseRepo, lease: Lease, *, now: datetime) -> None:
        """Other ports for a starting lease (one was taken outside gpubot): Jupyter's and,
        if it has one, sshd's; the old ones were marked used, so they rest."""
        repo.free_ports([lease.id or 0])
        lease.port = self.allocate_port(repo, lease, now=now)
        if lease.ssh_port is not None:
            lease.ssh_port = self.allocate_port(repo, lease, now=now)

    def allocate_port(self, repo: LeaseRepo, lease: Lease, *, now: datetime) -> int:
        """The least recently used free port (never used ones first): one foreign
        listener on a port costs one retry, not every claim, and a port that just
        served a lease rests."""
        assert lease.host is not None
        low, high = self.res.config.port_range
        taken = repo.taken_ports(lease.host)
        last = repo.ports_last_used(lease.host)
        free = sorted((p for p in range(low, high + 1) if p not in taken),
                      key=lambda p: (p in last, last.get(p), p))
        for port in free:
            if repo.try_allocate_port(lease, port, host=lease.host, now=now):
                return port
        raise DomainError("Every port in GPUBOT_PORT_RANGE is in use; ask an admin to "
                          "widen it.")

    def _report_foreign_use(self, repo: LeaseRepo, gpus: Sequence[GpuInfo], taken: set[str],
                            now: datetime) -> None:
        """Someone runs on a GPU outside any lease: never hand it out, tell the admins
        (at most once an hour per GPU), after the commit: never hold the grant's locks
        while Slack answers."""
        for gpu in allocation.busy_outside_leases(gpus, taken=taken):
            last = self._reported_busy.get(gpu.uuid)
            if last is not None and now - last < FOREIGN_USE_ALERT_EVERY:
                continue
            self._reported_busy[gpu.uuid] = now
            pids = ", ".join(str(p.pid) for p in gpu.processes)
            text = (f"GPU {gpu.index} ({gpu.name}, {gpu.uuid}) on {gpu.host} runs processes "
                    f"outside any lease (PIDs {pids}); gpubot will not hand it out.")
            log.warning(text)
            after_commit(repo.s, lambda text=text: self._alert(text))

    def _alert(self, text: str) -> None:
        try:
            self.res.notifier.admin_alert(text)
        except Exception:  # best effort: the GPU is withheld either way
            log.exception("could not alert the admins")
