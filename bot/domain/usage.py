"""Usage figures as the chat, the CLI and the chart show them (pure: no SQL, no Slack).

``UsageLine`` is one person's total over a window, ``GpuDay`` one GPU's UTC day, and
``UsageReport`` the weekly report: the days it covers, GPU-hours by user and every GPU's
mean utilization per day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta


@dataclass(frozen=True)
class UsageLine:
    user_id: str
    leases: int = 0
    gpu_hours: float = 0.0
    util_sum: int = 0  # kept as a sum and a count, so lines add up exactly
    samples: int = 0

    @property
    def mean_util(self) -> float | None:
        """Mean GPU utilization (%) over the leases' samples; None: never sampled."""
        return self.util_sum / self.samples if self.samples else None

    def __add__(self, other: UsageLine) -> UsageLine:
        return UsageLine(self.user_id, self.leases + other.leases,
                         self.gpu_hours + other.gpu_hours, self.util_sum + other.util_sum,
                         self.samples + other.samples)


def total(lines: tuple[UsageLine, ...] | list[UsageLine], name: str = "lab") -> UsageLine:
    return sum(lines, UsageLine(name))  # the start's name is kept (``__add__``)


@dataclass(frozen=True)
class UsageWindow:
    """``/gpu usage`` for one window: yours, and for admins the lab's by user."""

    days: int
    mine: UsageLine
    lab: tuple[UsageLine, ...] | None = None  # most GPU-hours first; None: not an admin


@dataclass(frozen=True)
class GpuDay:
    gpu: str  # a label people know ("GPU 0", or "host GPU 0" with several hosts)
    day: date
    util: float  # mean utilization over the day's samples, percent
    leased: float  # share of the day's samples it was leased, 0..1


@dataclass(frozen=True)
class UsageReport:
    """The seven (``days``) UTC days up to and including ``until``'s day, that day so far."""

    first_day: date
    until: datetime
    users: tuple[UsageLine, ...]  # most GPU-hours first
    gpu_days: tuple[GpuDay, ...]

    @property
    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=n)
                for n in range((self.until.date() - self.first_day).days + 1)]

    @property
    def gpus(self) -> list[str]:
        return list(dict.fromkeys(g.gpu for g in self.gpu_days))

    @property
    def lab(self) -> UsageLine:
        return total(self.users)

    def util(self, gpu: str, day: date) -> float | None:
        """The GPU's mean utilization that day; None: not sampled (bot down, GPU absent)."""
        return next((g.util for g in self.gpu_days if g.gpu == gpu and g.day == day), None)

    @property
    def mean_gpu_util(self) -> float | None:
        """Mean over every sampled GPU-day (leased or not): how busy the hardware was."""
        values = [g.util for g in self.gpu_days]
        return sum(values) / len(values) if values else None
