"""The gauges of ``bot.adapters.metrics``, read at scrape time (a custom Collector).

Nothing is counted along the way: every scrape asks the database (leases by status, the
queue, outbox intents not yet acknowledged) and the GPU inventory (GPU states), so the
numbers cannot drift from the truth, survive restarts, and agree between two bot
processes on one database. A source that fails is left out of that scrape (Prometheus
shows the gap) and counted in ``gpubot_metrics_collect_errors_total{source}``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from bot.db.engine import Database
from bot.db.tables import leases
from bot.domain.lease import LeaseStatus

log = logging.getLogger(__name__)

# Leases waiting in line have this status once the queue exists (DESIGN §4.1); until
# then no row can carry it and the gauge is truthfully 0.
QUEUED = "queued"


class StateCollector(Collector):
    def __init__(self, *, db: Database, gpu_states: Callable[[], Iterable[str]],
                 known_gpu_states: Iterable[str],
                 effects_pending: Callable[[], int] | None = None) -> None:
        self.db = db
        self.gpu_states = gpu_states
        self.known_gpu_states = tuple(known_gpu_states)
        self.effects_pending = effects_pending
        self._errors: Counter[str] = Counter()

    def collect(self) -> Iterator[Metric]:
        yield from self._guard("gpus", self._gpus)
        yield from self._guard("database", self._leases)
        if self.effects_pending is not None:
            yield from self._guard("outbox", self._effects)
        errors = CounterMetricFamily("gpubot_metrics_collect_errors",
                                     "Scrapes in which a source of gauges failed",
                                     labels=["source"])
        for source in ("gpus", "database", "outbox"):
            errors.add_metric([source], self._errors[source])
        yield errors

    def _guard(self, source: str, read: Callable[[], list[Metric]]) -> list[Metric]:
        try:
            return read()
        except Exception:  # noqa: BLE001 - a scrape must answer even when NVML/DB do not
            self._errors[source] += 1
            log.warning("metrics: reading %s failed", source, exc_info=True)
            return []

    def _gpus(self) -> list[Metric]:
        counts = Counter(self.gpu_states())
        family = GaugeMetricFamily("gpubot_gpus", "GPUs (or MIG instances) of this host by "
                                   "state: free, leased, busy (used outside gpubot), unhealthy",
                                   labels=["state"])
        for state in dict.fromkeys([*self.known_gpu_states, *counts]):
            family.add_metric([state], counts[state])
        return [family]

    def _leases(self) -> list[Metric]:
        with self.db.transaction() as session:
            rows = session.execute(select(leases.c.status, func.count())
                                   .group_by(leases.c.status)).all()
        by_status = {getattr(status, "value", status): n for status, n in rows}
        family = GaugeMetricFamily("gpubot_leases", "Leases in the database by status",
                                   labels=["status"])
        for status in dict.fromkeys([*(s.value for s in LeaseStatus), *by_status]):
            family.add_metric([status], by_status.get(status, 0))
        queue = GaugeMetricFamily("gpubot_queue_length",
                                  "Claims waiting in line for a GPU (status queued)",
                                  value=by_status.get(QUEUED, 0))
        return [family, queue]

    def _effects(self) -> list[Metric]:
        assert self.effects_pending is not None
        return [GaugeMetricFamily("gpubot_effects_pending",
                                  "Outbox effects (DMs, container stops) committed to but not "
                                  "yet acknowledged; the reconciler redoes them",
                                  value=self.effects_pending())]
