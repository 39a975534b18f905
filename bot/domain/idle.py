"""When a lease counts as idle, and when an idle lease is warned and reclaimed. Pure.

GPU utilization alone is not "idle": a notebook launching one small kernel a second reads
0 % on every NVML sample. A lease is idle at a sample when every GPU it holds is at or
below the threshold *and* its Jupyter is quiet: no kernel busy, no activity (kernels,
terminals, API use) since the previous sample. ``idle_since`` is the first sample of the
current idle stretch; any non-idle sample, or "I'm still using it", ends the stretch.

Reclaim happens only while someone waits for a GPU the lease holds: idle for
``warn_after`` → warned (a DM with the time it will be reclaimed); idle for
``reclaim_after`` and warned at least ``reclaim_after - warn_after`` ago → reclaimed.
So the warning always comes that long before the reclaim, also when someone starts
waiting after a lease has long been idle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from bot.domain.lease import Lease


@dataclass(frozen=True)
class IdleRules:
    util_percent: int
    warn_after: timedelta
    reclaim_after: timedelta
    snooze: timedelta

    @property
    def notice(self) -> timedelta:
        """How long a warning comes before the reclaim, at least."""
        return max(self.reclaim_after - self.warn_after, timedelta(0))


@dataclass(frozen=True)
class JupyterActivity:
    busy: bool  # a kernel is executing
    last_activity: datetime | None  # kernels, terminals, API use


@dataclass(frozen=True)
class Sample:
    """One tick's view of a lease: its GPUs' utilization (None: unknown) and Jupyter's
    activity (None: could not be read, which never counts as quiet)."""

    utilization: Sequence[int | None]
    jupyter: JupyterActivity | None


def is_idle(sample: Sample, rules: IdleRules, *, since: datetime) -> bool:
    """Idle at this sample: every GPU at or below the threshold and Jupyter quiet since
    ``since`` (the previous sample)."""
    if not sample.utilization or any(u is None or u > rules.util_percent
                                     for u in sample.utilization):
        return False
    jupyter = sample.jupyter
    if jupyter is None or jupyter.busy:
        return False
    return jupyter.last_activity is None or jupyter.last_activity <= since


def idle_since(lease: Lease, idle_now: bool, *, now: datetime) -> datetime | None:
    """The new ``idle_since`` after a sample."""
    if not idle_now or (lease.snoozed_until is not None and lease.snoozed_until > now):
        return None
    return lease.idle_since or now


class Step(str, Enum):
    NONE = "none"
    WARN = "warn"
    RECLAIM = "reclaim"


def next_step(lease: Lease, rules: IdleRules, *, now: datetime, wanted: bool) -> Step:
    """What to do with a lease after its sample; ``wanted``: someone waits for a GPU it
    holds (nobody waiting: nothing is ever warned or reclaimed)."""
    if not wanted or lease.idle_since is None:
        return Step.NONE
    idle_for = now - lease.idle_since
    if lease.idle_warned_at is None:
        return Step.WARN if idle_for >= rules.warn_after else Step.NONE
    if idle_for >= rules.reclaim_after and now - lease.idle_warned_at >= rules.notice:
        return Step.RECLAIM
    return Step.NONE


def reclaim_at(lease: Lease, rules: IdleRules, *, warned_at: datetime) -> datetime:
    """When a lease warned at ``warned_at`` will be reclaimed if it stays idle."""
    assert lease.idle_since is not None
    return max(lease.idle_since + rules.reclaim_after, warned_at + rules.notice)
