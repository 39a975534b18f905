"""What the chat side (Slack handlers, the console) and the CLI may call: the use cases
and the few facts they render with. Nothing else of the object graph leaks out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.gpus import GpuInfo
from bot.domain.lease import Lease
from bot.services.approvals import ApprovalService
from bot.services.claim import ClaimService
from bot.services.environments import EnvironmentRow, environment_table
from bot.services.idle import IdleService
from bot.services.keys import KeyService
from bot.services.leases import LeaseCommands
from bot.services.queue import QueueService
from bot.services.resources import Resources
from bot.services.usage import UsageService
from bot.services.views import (
    GpuRow,
    LeaseRow,
    gpu_table,
    list_leases,
    waiting,
    why_waiting,
)


@dataclass(frozen=True)
class UseCases:
    claims: ClaimService
    leases: LeaseCommands
    approvals: ApprovalService
    queue: QueueService
    idle: IdleService
    resources: Resources
    usage: UsageService
    keys: KeyService  # SSH public keys (issue 13.2)

    @property
    def default_lease(self) -> timedelta:
        return self.resources.policy.default_lease

    @property
    def max_lease(self) -> timedelta:
        return self.resources.policy.max_lease

    @property
    def extend_by(self) -> timedelta:
        return self.resources.config.extend_by

    def now(self) -> datetime:
        return self.resources.clock.now()

    def is_admin(self, user_id: str) -> bool:
        return self.resources.policy.is_admin(user_id)

    def require_admin(self, user_id: str) -> None:
        self.resources.policy.require_admin(user_id)

    def gpu_table(self) -> list[GpuRow]:
        return gpu_table(self.resources)

    def leases_of(self, user_id: str, *, gpus: list[GpuInfo] | None = None) -> list[LeaseRow]:
        return list_leases(self.resources, user_id=user_id, gpus=gpus)

    def waiting(self) -> int:
        return waiting(self.resources)

    def workspace_usage(self, user_id: str) -> int | None:
        """Bytes in the person's workspace (None: none yet, or not known here)."""
        return self.resources.runtime.workspace_usage(user_id)

    def why_waiting(self, lease: Lease) -> str:
        return why_waiting(self.resources, lease)

    def environments(self) -> list[EnvironmentRow]:
        """`/gpu envs`: the images offered, their CUDA, whether this host runs them."""
        return environment_table(self.resources)

    def all_leases(self, *, include_ended: bool = False) -> list[LeaseRow]:
        return list_leases(self.resources, include_ended=include_ended)
