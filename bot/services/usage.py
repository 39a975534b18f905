"""Usage figures (issue 12.3, 12.4): ``/gpu usage``, ``gpubot usage`` and the weekly
report with its chart. Pure reads of what the idle sampler wrote (``bot.db.usage``);
the chart is drawn behind a port (``UsageChart``, matplotlib in ``bot.adapters.chart``)
and sent through the Notifier.

Windows end now: "the last 7 days" is [now - 7 days, now]. GPU-hours count only the part
of a lease inside the window; its utilization samples count whole (they are kept per
lease, not per day: ``UsageRepo.by_user``).
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta

from bot.db.engine import Session
from bot.db.usage import UsageRepo, UserUsage
from bot.domain.usage import GpuDay, UsageLine, UsageReport, UsageWindow
from bot.ports import UsageChart
from bot.services.resources import Resources

log = logging.getLogger(__name__)
WINDOWS = (7, 30)  # days, DESIGN §4.1
REPORT_DAYS = 7


class UsageService:
    def __init__(self, res: Resources, chart: UsageChart) -> None:
        self.res, self.chart = res, chart

    def usage(self, *, user_id: str) -> list[UsageWindow]:
        """Yours for each window; an admin also gets the lab's, by user."""
        now, admin = self.res.clock.now(), self.res.policy.is_admin(user_id)

        def read(session: Session) -> list[UsageWindow]:
            repo, windows = UsageRepo(session), []
            for days in WINDOWS:
                lines = [_line(u) for u in repo.by_user(
                    since=now - timedelta(days=days), until=now,
                    user_id=None if admin else user_id)]
                mine = next((x for x in lines if x.user_id == user_id), UsageLine(user_id))
                windows.append(UsageWindow(days, mine, tuple(lines) if admin else None))
            return windows

        return self.res.db.run(read)

    def by_user(self, *, since: timedelta) -> list[UsageLine]:
        """Everyone's over [now - since, now], most GPU-hours first (``gpubot usage``,
        run by an admin on the host)."""
        now = self.res.clock.now()
        return self.res.db.run(lambda s: [_line(u) for u in UsageRepo(s).by_user(
            since=now - since, until=now)])

    def report(self, *, days: int = REPORT_DAYS) -> UsageReport:
        """The ``days`` UTC days up to and including today (today so far)."""
        now = self.res.clock.now()
        first = now.date() - timedelta(days=days - 1)
        start = datetime.combine(first, time(), tzinfo=now.tzinfo)

        def read(session: Session) -> tuple[list[UserUsage], list[tuple]]:
            repo = UsageRepo(session)
            return repo.by_user(since=start, until=now), repo.gpu_days(first)

        users, rows = self.res.db.run(read)
        names = self._gpu_names({(uuid, host) for uuid, host, *_ in rows})
        gpu_days = sorted((GpuDay(names[(uuid, host)], day, util, leased)
                           for uuid, host, day, util, leased in rows if day <= now.date()),
                          key=lambda g: (_natural(g.gpu), g.day))
        return UsageReport(first, now, tuple(_line(u) for u in users), tuple(gpu_days))

    def post_report(self, *, by: str | None = None) -> UsageReport:
        """Draw the report's chart and send both to the admin channel; ``by``: the admin
        who asked (``/gpu report``), None for the schedule."""
        if by is not None:
            self.res.policy.require_admin(by)
        report = self.report()
        self.res.notifier.usage_report(report, self.chart.render(report))
        log.info("usage report sent (%s to %s, %d users, %d GPU-days)", report.first_day,
                 report.until.date(), len(report.users), len(report.gpu_days))
        return report

    def prune(self, *, older_than: timedelta) -> int:
        """GPU-days older than ``older_than`` go (the hourly prune job); the per-lease
        figures stay with their lease rows."""
        before = (self.res.clock.now() - older_than).date()
        return self.res.db.run(lambda s: UsageRepo(s).prune_days(before))

    def _gpu_names(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """"GPU 0" from the live listing (this host's GPUs); the host is named too when
        the rows span several; a GPU no longer listed keeps the end of its UUID."""
        try:
            index = {g.uuid: g.index for g in self.res.inventory.list_gpus()}
        except Exception:  # noqa: BLE001 - NVML down: the report still goes out
            log.warning("usage report: GPUs not listed, naming them by UUID", exc_info=True)
            index = {}
        hosts = len({host for _, host in keys}) > 1
        return {(uuid, host): (f"{host} " if hosts else "")
                + (f"GPU {index[uuid]}" if uuid in index else f"GPU …{uuid[-6:]}")
                for uuid, host in keys}


def _line(usage: UserUsage) -> UsageLine:
    return UsageLine(usage.user_id, usage.leases, usage.gpu_hours, usage.util_sum,
                     usage.util_samples)


def _natural(label: str) -> tuple[str, int, str]:
    """"GPU 2" before "GPU 10"."""
    head, _, tail = label.rpartition(" ")
    return (head, int(tail), "") if tail.isdigit() else (head, 1 << 30, tail)
