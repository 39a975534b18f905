"""Deaths of lease jobs, for ``SlurmRuntime.watch_events``: slurmrestd has no event
stream, so the job list is polled and each live job of ours that ended is reported once
(not the ones ``stop`` cancelled). A failed poll reports nothing: unreachable is not dead,
and the reconciler covers any gap."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from typing import Any

from bot.adapters.slurm_state import is_alive, job_state
from bot.ports import ContainerState, ContainerStatus, EventCallback

log = logging.getLogger(__name__)
Job = dict[str, Any]


def watch(*, list_jobs: Callable[[], list[Job]], lease_of: Callable[[Job], int | None],
          state_of: Callable[[Job], ContainerState], stopped: Collection[int],
          on_event: EventCallback, stop: threading.Event, interval: float) -> None:
    alive: dict[int, int] = {}  # job id -> lease
    while not stop.is_set():
        try:
            jobs = {int(j["job_id"]): j for j in list_jobs() if lease_of(j) is not None}
        except Exception:  # noqa: BLE001 - unreachable: try again, never "gone"
            log.warning("cannot list Slurm jobs for events; retrying", exc_info=True)
            stop.wait(max(2.0, interval))
            continue
        for job_id, lease in list(alive.items()):
            job = jobs.get(job_id)
            if job is not None and is_alive(job):
                continue
            del alive[job_id]
            if job_id in stopped:
                continue
            state = state_of(job) if job is not None else ContainerState(ContainerStatus.GONE)
            try:
                on_event(lease, state)
            except Exception:  # noqa: BLE001 - one callback failing must not end the watch
                log.exception("event callback for lease %s failed", lease)
        for job_id, job in jobs.items():
            if is_alive(job) and job_state(job) != "COMPLETING":
                alive.setdefault(job_id, int(lease_of(job) or 0))
        stop.wait(interval)
