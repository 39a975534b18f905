"""A JupyterProbe whose answers the test sets per lease (idle by default)."""

from __future__ import annotations

import threading
from datetime import datetime

from bot.domain.idle import JupyterActivity
from bot.domain.lease import Lease


class FakeJupyterProbe:
    def __init__(self) -> None:
        self._answers: dict[int, JupyterActivity | None] = {}
        self.probed: list[int] = []
        self.forgotten: list[int] = []
        self._lock = threading.Lock()

    def set(self, lease_id: int | None, *, busy: bool = False,
            last_activity: datetime | None = None, answers: bool = True) -> None:
        self._answers[lease_id or 0] = (JupyterActivity(busy, last_activity) if answers
                                        else None)

    def activity(self, lease: Lease, password: str) -> JupyterActivity | None:
        with self._lock:
            self.probed.append(lease.id or 0)
        if not password:
            return None
        return self._answers.get(lease.id or 0, JupyterActivity(False, None))

    def forget(self, lease_id: int) -> None:
        with self._lock:
            self.forgotten.append(lease_id)
