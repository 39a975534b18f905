"""Prometheus metrics on ``GPUBOT_METRICS_ADDRESS`` (prometheus-client).

Names fixed by DESIGN §4.1: ``gpubot_gpus{state}``, ``gpubot_leases{status}``,
``gpubot_queue_length`` (gauges read at scrape time, ``metrics_state``),
``gpubot_claim_ready_seconds`` (histogram, observed when the access DM goes out) and
``gpubot_idle_reclaims_total``. For operators: ``gpubot_slack_api_errors_total{method,
error}`` (``metrics_slack``), ``gpubot_effects_pending`` and
``gpubot_job_duration_seconds{task}`` (expire, remind, reconcile).

One ``Metrics`` object holds its own registry (not prometheus-client's global one, so
tests and two bots in one process never collide); the composition root makes it only
when the address is set, and wires it in four places: ``meter_slack(client)``,
``notifier(inner)``, ``watch(...)``, ``jobs(jobs)``; ``serve(address)`` starts the
endpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from bot.adapters.metrics_slack import meter_client
from bot.adapters.metrics_state import StateCollector
from bot.settings import parse_listen_address

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from slack_sdk import WebClient

    from bot.db.engine import Database
    from bot.domain.lease import Lease
    from bot.ports import AccessInfo, Notifier

log = logging.getLogger(__name__)

# Seconds from claim to access DM: a Jupyter start takes seconds, an image pull minutes,
# a claim an admin must approve up to hours.
READY_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)
# The Notifier method that tells a holder their idle lease was reclaimed (DESIGN §4.1
# idle reclaim): each call counts in gpubot_idle_reclaims_total. Until a notifier has it,
# nothing is reclaimed and the counter is 0.
IDLE_RECLAIM_NOTICE = "idle_reclaimed"
JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.claim_ready = Histogram(
            "gpubot_claim_ready_seconds", "From the claim to its access DM (Jupyter up; "
            "includes waiting for an admin's approval)", buckets=READY_BUCKETS,
            registry=self.registry)
        self.queue_wait = Histogram(
            "gpubot_queue_wait_seconds", "From joining the queue to the access DM of a "
            "request granted from it", buckets=READY_BUCKETS, registry=self.registry)
        self.idle_reclaims = Counter(
            "gpubot_idle_reclaims", "Leases ended because they sat idle while someone "
            "waited for their GPU", registry=self.registry)
        self.slack_errors = Counter(
            "gpubot_slack_api_errors", "Slack Web API attempts that failed, by method and "
            "Slack's error code (http_<status> or the exception type without one)",
            labelnames=["method", "error"], registry=self.registry)
        self.job_duration = Histogram(
            "gpubot_job_duration_seconds", "How long each run of a scheduled job took "
            "(reconcile: compare Docker and the database and repair)",
            labelnames=["task"], buckets=JOB_BUCKETS, registry=self.registry)
        self.job_failures = Counter(
            "gpubot_job_failures", "Scheduled job runs that raised", labelnames=["task"],
            registry=self.registry)
        self._state: StateCollector | None = None

    # ----------------------------------------------------------------- wiring
    def meter_slack(self, client: WebClient) -> WebClient:
        """Count ``client``'s failed Web API attempts (and those of Bolt's copies)."""
        return meter_client(client, self.slack_errors)

    def notifier(self, inner: Notifier) -> MeteredNotifier:
        return MeteredNotifier(inner, self)

    def watch(self, *, db: Database, gpu_states: Callable[[], Iterable[str]],
              known_gpu_states: Iterable[str], effects_pending: Callable[[], int]) -> None:
        """Gauges read at every scrape: GPU states from ``gpu_states()`` (one state per
        GPU), leases and the queue from ``db``, pending effects from the outbox."""
        if self._state is not None:
            self.registry.unregister(self._state)
        self._state = StateCollector(db=db, gpu_states=gpu_states,
                                     known_gpu_states=known_gpu_states,
                                     effects_pending=effects_pending)
        self.registry.register(self._state)

    def jobs(self, jobs: Mapping[str, Callable[[], Any]]) -> dict[str, Callable[[], Any]]:
        """The scheduler's jobs, each timed into ``gpubot_job_duration_seconds{task}``."""
        return {name: self._timed(name, job) for name, job in jobs.items()}

    def _timed(self, name: str, job: Callable[[], Any]) -> Callable[[], Any]:
        # Label "task", not "job": Prometheus sets "job" on every series (the scrape job).
        duration = self.job_duration.labels(task=name)
        failures = self.job_failures.labels(task=name)

        def run() -> Any:
            started = time.perf_counter()
            try:
                return job()
            except Exception:
                failures.inc()
                raise
            finally:
                duration.observe(time.perf_counter() - started)

        run.__name__ = getattr(job, "__name__", name)
        return run

    def serve(self, address: str) -> MetricsServer:
        """Serve ``/metrics`` on ``address`` (``host:port``) in a daemon thread."""
        host, port = parse_listen_address(address)
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics at http://%s/metrics", address)
        return MetricsServer(server, thread)


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: Any

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MeteredNotifier:
    """A Notifier that observes what it passes on: the access DM (claim -> ready) and
    idle reclaims (``IDLE_RECLAIM_NOTICE``). Everything else, and any method the inner
    notifier has beyond the port (the Slack notifier's ``remember_approval_message``),
    goes straight through."""

    def __init__(self, inner: Notifier, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def access_ready(self, lease: Lease, access: AccessInfo) -> None:
        self._inner.access_ready(lease, access)
        # Only once the DM went out: a refused one (rate limit) is redone and counted then.
        if lease.started_at is not None:
            waited = (lease.started_at - lease.created_at).total_seconds()
            self._metrics.claim_ready.observe(max(waited, 0.0))
            if lease.queued_at is not None:
                queued = (lease.started_at - lease.queued_at).total_seconds()
                self._metrics.queue_wait.observe(max(queued, 0.0))

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name != IDLE_RECLAIM_NOTICE:
            return attribute

        def reclaimed(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            self._metrics.idle_reclaims.inc()
            return result

        return reclaimed
