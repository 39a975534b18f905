"""A Notifier that records what it was told, for assertions."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sent:
    kind: str
    lease_id: int | None
    data: dict[str, Any]


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self._lock = threading.Lock()

    def _add(self, kind: str, lease: Any = None, **data: Any) -> None:
        with self._lock:
            self.sent.append(Sent(kind, getattr(lease, "id", None), data))

    def kinds(self, lease_id: int | None = None) -> list[str]:
        return [s.kind for s in self.sent if lease_id is None or s.lease_id == lease_id]

    def of(self, kind: str) -> list[Sent]:
        return [s for s in self.sent if s.kind == kind]

    def progress(self, lease: Any, text: str) -> None:
        self._add("progress", lease, text=text)

    def access_ready(self, lease: Any, access: Any) -> None:
        self._add("access_ready", lease, url=access.url, password=access.password,
                  ssh=access.ssh)

    def access_resend(self, lease: Any, access: Any) -> None:
        self._add("access_resend", lease, url=access.url, password=access.password,
                  ssh=access.ssh)

    def claim_failed(self, lease: Any, reason: str) -> None:
        self._add("claim_failed", lease, reason=reason)

    def approval_requested(self, lease: Any) -> None:
        self._add("approval_requested", lease)

    def approval_decided(self, lease: Any, *, approved: bool, by: str, reason: str | None) -> None:
        self._add("approval_decided", lease, approved=approved, by=by, reason=reason)

    def reminder(self, lease: Any, remaining: Any) -> None:
        self._add("reminder", lease, remaining=remaining)

    def expired(self, lease: Any, workspace: str) -> None:
        self._add("expired", lease, workspace=workspace)

    def container_died(self, lease: Any, state: Any) -> None:
        self._add("container_died", lease, state=state)

    def queue_timed_out(self, lease: Any) -> None:
        self._add("queue_timed_out", lease)

    def idle_warning(self, lease: Any, reclaim_at: Any) -> None:
        self._add("idle_warning", lease, reclaim_at=reclaim_at)

    def idle_reclaimed(self, lease: Any, workspace: str) -> None:
        self._add("idle_reclaimed", lease, workspace=workspace)

    def approval_withdrawn(self, lease: Any) -> None:
        self._add("approval_withdrawn", lease)

    def admin_alert(self, text: str) -> None:
        self._add("admin_alert", None, text=text)

    def usage_report(self, report: Any, png: bytes) -> None:
        self._add("usage_report", None, report=report, png=png)
