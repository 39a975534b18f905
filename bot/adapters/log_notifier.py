"""A Notifier for contexts without Slack (CLI commands): it logs what it would say,
never a password."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

log = logging.getLogger("gpubot.notify")


class LogNotifier:
    def progress(self, lease: Any, text: str) -> None:
        log.info("lease %s: %s", lease.id, text)

    def access_ready(self, lease: Any, access: Any) -> None:
        log.info("lease %s ready at %s", lease.id, access.url)

    def access_resend(self, lease: Any, access: Any) -> None:
        log.info("lease %s: access details re-sent", lease.id)

    def claim_failed(self, lease: Any, reason: str) -> None:
        log.warning("lease %s failed: %s", lease.id, reason)

    def approval_requested(self, lease: Any) -> None:
        log.info("lease %s waits for an admin", lease.id)

    def approval_decided(self, lease: Any, *, approved: bool, by: str, reason: str | None) -> None:
        log.info("lease %s %s by %s", lease.id, "approved" if approved else "denied", by)

    def reminder(self, lease: Any, remaining: timedelta) -> None:
        log.info("lease %s ends in %s", lease.id, remaining)

    def expired(self, lease: Any, workspace: str) -> None:
        log.info("lease %s expired; files kept in %s", lease.id, workspace)

    def container_died(self, lease: Any, state: Any) -> None:
        log.warning("lease %s: container ended (%s)", lease.id, state)

    def queue_timed_out(self, lease: Any) -> None:
        log.info("lease %s left the queue: it waited too long", lease.id)

    def idle_warning(self, lease: Any, reclaim_at: Any) -> None:
        log.info("lease %s is idle while someone waits; reclaimed at %s", lease.id, reclaim_at)

    def idle_reclaimed(self, lease: Any, workspace: str) -> None:
        log.info("lease %s was reclaimed (idle); files kept in %s", lease.id, workspace)

    def approval_withdrawn(self, lease: Any) -> None:
        log.info("lease %s: the request was withdrawn", lease.id)

    def admin_alert(self, text: str) -> None:
        log.warning("admin alert: %s", text)

    def usage_report(self, report: Any, png: bytes) -> None:
        # Nowhere to show a chart: `gpubot usage` prints the table instead.
        log.info("usage report %s to %s: %.1f GPU-hours by %d users (%d-byte chart not "
                 "sent)", report.first_day, report.until.date(), report.lab.gpu_hours,
                 len(report.users), len(png))
