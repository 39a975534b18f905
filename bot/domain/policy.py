"""Who may claim what: lease bounds, the per-user limit and the approval rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.durations import check_bounds, format_duration
from bot.domain.errors import DomainError, LeaseLimitReached, NotAllowed

MAX_GPUS_PER_CLAIM = 8


@dataclass(frozen=True)
class Policy:
    min_lease: timedelta
    max_lease: timedelta
    default_lease: timedelta
    approval_above: timedelta
    max_leases_per_user: int
    admins: frozenset[str] = frozenset()

    def check_claim(self, *, duration: timedelta, gpu_count: int, open_leases: int) -> bool:
        """Validate a claim; return True when it needs an admin's approval."""
        check_bounds(duration, minimum=self.min_lease, maximum=self.max_lease)
        if not 1 <= gpu_count <= MAX_GPUS_PER_CLAIM:
            raise DomainError(f"Ask for between 1 and {MAX_GPUS_PER_CLAIM} GPUs.")
        if open_leases >= self.max_leases_per_user:
            raise LeaseLimitReached(
                f"You already have {open_leases} open lease(s), the most allowed per "
                f"person. Release one with `/gpu release <lease>` first."
            )
        return self.needs_approval(duration=duration, gpu_count=gpu_count)

    def needs_approval(self, *, duration: timedelta, gpu_count: int) -> bool:
        return duration > self.approval_above or gpu_count > 1

    def check_extension(self, *, new_total: timedelta) -> None:
        """An extension may not take a lease past the maximum lease length."""
        if new_total > self.max_lease:
            raise DomainError(
                f"That would make the lease {format_duration(new_total)} long; the "
                f"maximum is {format_duration(self.max_lease)}."
            )

    def extended_expiry(self, *, started_at: datetime, expires_at: datetime,
                        duration: timedelta) -> datetime:
        """The new end of a lease extended by ``duration``, bounds checked before any
        arithmetic (``expires_at + 999999w`` raises OverflowError, not a DomainError)."""
        if duration > self.max_lease:
            raise DomainError(f"An extension of {format_duration(duration)} is longer than "
                              f"the maximum lease of {format_duration(self.max_lease)}.")
        self.check_extension(new_total=expires_at - started_at + duration)
        return expires_at + duration

    def is_admin(self, user_id: str) -> bool:
        return user_id in self.admins

    def require_admin(self, user_id: str) -> None:
        if not self.is_admin(user_id):
            raise NotAllowed("Only a gpubot admin can do that.")
