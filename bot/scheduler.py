"""APScheduler 3.x jobs that drive the lease lifecycle (expire, remind, reconcile).

One ``BackgroundScheduler`` in UTC with the in-memory job store: the jobs are rebuilt at
every start, and their state lives in the database, not in the scheduler. Each job:

- has an explicit id (``expire``, ``remind``, ``reconcile``) and ``replace_existing``;
- ``max_instances=1``: a slow run is never overlapped by the next one of the same job
  (APScheduler skips that run and logs it); other bot processes are kept apart by the
  row locks in ``LifecycleService``, not by the scheduler;
- ``coalesce=True``: runs missed while the process was stalled collapse into one;
- ``misfire_grace_time=None``: such a late run still happens (it is a catch-up sweep,
  so running late is always better than skipping to the next interval);
- logs and swallows its exceptions, so the next interval runs as usual (the services
  already isolate failures per lease).

``reconcile`` also runs once right away at start-up (``next_run_time=now``): after a
crash it repairs what the previous process left behind before users notice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger(__name__)
JOB_IDS = ("expire", "remind", "reconcile")
# Run when given (bot.bootstrap.Gpubot.jobs gives it): deletes old audit and outbox rows.
PRUNE_JOB, PRUNE_SECONDS = "prune", 3600.0
SAMPLE_JOB = "sample"  # idle reclaim and usage, every tick
REPORT_JOB = "report"  # the usage report to the admin channel, on GPUBOT_REPORT_SCHEDULE
DEFAULT_RECONCILE_SECONDS = 60.0


Job = Callable[[], Any]


def guarded(name: str, job: Callable[[], Any]) -> Callable[[], None]:
    """``job`` that logs its outcome and never raises into the scheduler."""

    def run() -> None:
        started = time.perf_counter()
        try:
            result = job()
        except Exception:
            log.exception("scheduled job %r failed; it runs again at the next interval", name)
            return
        elapsed = time.perf_counter() - started
        level = logging.INFO if result else logging.DEBUG
        log.log(level, "job %r done in %.3fs: %s", name, elapsed, result)

    run.__name__ = f"gpubot_{name}"
    return run


def build_scheduler(jobs: Mapping[str, Job], tick_seconds: float, *,
                    reconcile_seconds: float | None = None,
                    report_at: tuple[str, int, int] | None = None,
                    now: Callable[[], datetime] = lambda: datetime.now(UTC)
                    ) -> BackgroundScheduler:
    """The scheduler, not yet started, over ``jobs`` (one callable per name in
    ``JOB_IDS``): ``expire`` and ``remind`` every ``tick_seconds``,
    ``reconcile`` every ``reconcile_seconds`` (default: a minute, or the tick if longer)
    and once at start-up; ``sample``, when given, every tick; ``prune`` hourly;
    ``report`` at ``report_at`` (cron day_of_week, hour, minute, UTC) when both are given.
    The caller starts it and shuts it down (``shutdown(wait=True)`` lets running jobs
    finish)."""
    if tick_seconds <= 0:
        raise ValueError("tick_seconds must be positive")
    reconcile_every = reconcile_seconds or max(DEFAULT_RECONCILE_SECONDS, tick_seconds)
    scheduler = BackgroundScheduler(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(max_workers=max(len(jobs), len(JOB_IDS)))},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    every_job = [("expire", tick_seconds), ("remind", tick_seconds),
                 ("reconcile", reconcile_every)]
    if SAMPLE_JOB in jobs:
        every_job.append((SAMPLE_JOB, tick_seconds))
    if PRUNE_JOB in jobs:
        every_job.append((PRUNE_JOB, PRUNE_SECONDS))
    for job_id, every in every_job:
        extra: dict[str, Any] = {"next_run_time": now()} if job_id == "reconcile" else {}
        scheduler.add_job(guarded(job_id, jobs[job_id]), "interval",
                          seconds=every, id=job_id, name=f"gpubot {job_id}",
                          replace_existing=True, coalesce=True, max_instances=1,
                          misfire_grace_time=None, **extra)
    if REPORT_JOB in jobs and report_at is not None:
        day_of_week, hour, minute = report_at
        scheduler.add_job(guarded(REPORT_JOB, jobs[REPORT_JOB]),
                          CronTrigger(day_of_week=day_of_week, hour=hour, minute=minute,
                                      timezone=UTC),
                          id=REPORT_JOB, name=f"gpubot {REPORT_JOB}", replace_existing=True,
                          coalesce=True, max_instances=1, misfire_grace_time=None)
    return scheduler
