"""``bot.adapters.metrics`` with real parts: a migrated SQLite database, prometheus-client's
HTTP endpoint scraped over TCP and parsed with its own parser, slack_sdk against the Slack
stand-in. The end-to-end test with a real Prometheus server is ``test_metrics_e2e.py``."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from sqlalchemy import insert

from bot.adapters.metrics import Metrics
from bot.db import migrate
from bot.db.engine import Database
from bot.db.tables import leases, users
from bot.domain.errors import MessageDelayed
from bot.domain.lease import Lease, LeaseStatus
from bot.ports import AccessInfo
from tests.infra.docker_engine import free_port
from tests.slack_standin import SlackStandIn

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
STATES = ("free", "leased", "busy", "unhealthy")


def scrape(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics over TCP: {(sample name, sorted labels): value}."""
    server = metrics.serve(f"127.0.0.1:{free_port()}")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics",
                                    timeout=10) as answer:
            text = answer.read().decode()
    finally:
        server.close()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path}/gpubot.db"
    migrate.upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


def add_leases(db: Database, *statuses: LeaseStatus) -> None:
    with db.transaction() as session:
        session.execute(insert(users), [{"id": "U1", "created_at": T0}])
        session.execute(insert(leases), [
            {"user_id": "U1", "status": s, "duration_s": timedelta(hours=1), "gpu_count": 1,
             "gpu_uuids": (), "created_at": T0, "reminders_sent": ""} for s in statuses])


def test_gauges_are_read_from_the_database_and_inventory_at_scrape_time(db: Database) -> None:
    metrics = Metrics()
    gpus = ["free", "leased", "leased"]
    pending = [0]
    metrics.watch(db=db, gpu_states=lambda: gpus, known_gpu_states=STATES,
                  effects_pending=lambda: pending[0])
    first = scrape(metrics)
    assert first[("gpubot_gpus", (("state", "leased"),))] == 2
    assert first[("gpubot_gpus", (("state", "unhealthy"),))] == 0  # every state, zero too
    for status in LeaseStatus:
        assert first[("gpubot_leases", (("status", status.value),))] == 0
    assert first[("gpubot_queue_length", ())] == 0
    assert first[("gpubot_effects_pending", ())] == 0

    add_leases(db, LeaseStatus.ACTIVE, LeaseStatus.ACTIVE, LeaseStatus.RELEASED,
               LeaseStatus.QUEUED)
    gpus[:] = ["leased", "busy"]
    pending[0] = 3
    second = scrape(metrics)
    assert second[("gpubot_leases", (("status", "active"),))] == 2
    assert second[("gpubot_leases", (("status", "released"),))] == 1
    assert second[("gpubot_gpus", (("state", "free"),))] == 0
    assert second[("gpubot_gpus", (("state", "busy"),))] == 1
    assert second[("gpubot_effects_pending", ())] == 3
    assert second[("gpubot_queue_length", ())] == 1  # the queued lease


def test_a_failing_source_leaves_a_gap_and_is_counted(db: Database) -> None:
    def nvml_down() -> list[str]:
        raise RuntimeError("NVML went away")

    metrics = Metrics()
    metrics.watch(db=db, gpu_states=nvml_down, known_gpu_states=STATES,
                  effects_pending=lambda: 0)
    samples = scrape(metrics)
    assert not [key for key in samples if key[0] == "gpubot_gpus"]
    assert samples[("gpubot_leases", (("status", "active"),))] == 0  # the rest still answers
    assert samples[("gpubot_metrics_collect_errors_total", (("source", "gpus"),))] == 1


class Recorder:
    """The notifier the metered one wraps: records, or refuses like a rate-limited Slack."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse, self.calls = refuse, []

    def access_ready(self, lease: Lease, access: AccessInfo) -> None:
        if self.refuse:
            raise MessageDelayed("later")
        self.calls.append(("access_ready", lease.id))

    def expired(self, lease: Lease, workspace: str) -> None:
        self.calls.append(("expired", workspace))

    def idle_reclaimed(self, lease: Lease) -> None:
        self.calls.append(("idle_reclaimed", lease.id))


def lease(ready_after: timedelta | None) -> Lease:
    return Lease(user_id="U1", duration=timedelta(hours=1), created_at=T0, id=7,
                 status=LeaseStatus.ACTIVE,
                 started_at=None if ready_after is None else T0 + ready_after)


def test_the_access_dm_observes_claim_to_ready() -> None:
    metrics = Metrics()
    inner = Recorder()
    notifier = metrics.notifier(inner)
    notifier.access_ready(lease(timedelta(seconds=42)), AccessInfo("http://h:1/", "pw"))
    notifier.expired(lease(None), "/ws/U1")  # passed through, not observed
    assert inner.calls == [("access_ready", 7), ("expired", "/ws/U1")]
    samples = scrape(metrics)
    assert samples[("gpubot_claim_ready_seconds_count", ())] == 1
    assert samples[("gpubot_claim_ready_seconds_sum", ())] == 42
    assert samples[("gpubot_claim_ready_seconds_bucket", (("le", "30.0"),))] == 0
    assert samples[("gpubot_claim_ready_seconds_bucket", (("le", "60.0"),))] == 1


def test_a_request_from_the_queue_observes_its_wait() -> None:
    metrics = Metrics()
    queued = lease(timedelta(minutes=50))
    queued.queued_at = T0 + timedelta(minutes=5)
    metrics.notifier(Recorder()).access_ready(queued, AccessInfo("http://h:1/", "pw"))
    metrics.notifier(Recorder()).access_ready(lease(timedelta(seconds=9)), AccessInfo("u", "p"))
    samples = scrape(metrics)
    assert samples[("gpubot_queue_wait_seconds_count", ())] == 1  # only the queued one
    assert samples[("gpubot_queue_wait_seconds_sum", ())] == 45 * 60


def test_a_refused_access_dm_is_not_observed_until_it_goes_out() -> None:
    metrics = Metrics()
    with pytest.raises(MessageDelayed):
        metrics.notifier(Recorder(refuse=True)).access_ready(lease(timedelta(seconds=5)),
                                                              AccessInfo("u", "pw"))
    assert scrape(metrics)[("gpubot_claim_ready_seconds_count", ())] == 0


def test_idle_reclaim_notices_are_counted() -> None:
    metrics = Metrics()
    assert scrape(metrics)[("gpubot_idle_reclaims_total", ())] == 0
    metrics.notifier(Recorder()).idle_reclaimed(lease(timedelta(1)))
    assert scrape(metrics)[("gpubot_idle_reclaims_total", ())] == 1
    with pytest.raises(AttributeError):  # nothing is made up for a notifier without it
        metrics.notifier(object()).idle_reclaimed  # type: ignore[arg-type]


def test_jobs_are_timed_and_failures_counted() -> None:
    metrics = Metrics()

    def broken() -> None:
        raise RuntimeError("boom")

    jobs = metrics.jobs({"reconcile": lambda: "ok", "expire": broken})
    assert jobs["reconcile"]() == "ok"
    with pytest.raises(RuntimeError):
        jobs["expire"]()
    samples = scrape(metrics)
    assert samples[("gpubot_job_duration_seconds_count", (("task", "reconcile"),))] == 1
    assert samples[("gpubot_job_duration_seconds_count", (("task", "expire"),))] == 1
    assert samples[("gpubot_job_failures_total", (("task", "expire"),))] == 1


def test_slack_errors_are_counted_by_method_and_code(slack_standin: SlackStandIn) -> None:
    metrics = Metrics()
    client = metrics.meter_slack(WebClient(token=slack_standin.bot_token,
                                           base_url=slack_standin.api_url))
    metrics.meter_slack(client)  # once only
    client.chat_postMessage(channel=slack_standin.users[0].id, text="hello")  # works
    with pytest.raises(SlackApiError) as refused:
        client.chat_postMessage(channel="C0NOSUCHCH", text="hello")
    code = refused.value.response["error"]
    bad = WebClient(token="xoxb-wrong", base_url=slack_standin.api_url)
    metrics.meter_slack(bad)
    with pytest.raises(SlackApiError):
        bad.auth_test()
    samples = scrape(metrics)
    errors = {k: v for k, v in samples.items() if k[0] == "gpubot_slack_api_errors_total"}
    assert errors == {
        ("gpubot_slack_api_errors_total", (("error", code), ("method", "chat.postMessage"))): 1,
        ("gpubot_slack_api_errors_total", (("error", "invalid_auth"), ("method", "auth.test"))): 1,
    }


def test_rate_limits_are_counted_and_still_waited_out() -> None:
    metrics = Metrics()
    with SlackStandIn(post_limit=(1, 1.0)) as standin:
        client = WebClient(token=standin.bot_token, base_url=standin.api_url)
        client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
        metrics.meter_slack(client)
        user = standin.users[0].id
        client.chat_postMessage(channel=user, text="one")
        client.chat_postMessage(channel=user, text="two")  # 429, waited out, then posted
        assert [m.text for m in standin.dms(user)] == ["one", "two"]
    key = ("gpubot_slack_api_errors_total", (("error", "ratelimited"),
                                             ("method", "chat.postMessage")))
    assert scrape(metrics)[key] >= 1


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9464", ("::1", 9464)),
    (":9464", ("0.0.0.0", 9464))])
def test_the_metrics_address_setting(text: str, expected: tuple[str, int]) -> None:
    from bot.settings import load_settings, parse_listen_address

    assert parse_listen_address(text) == expected
    assert load_settings(GPUBOT_METRICS_ADDRESS=text).metrics_address == text
    assert load_settings(_env_file=None).metrics_address is None  # unset: off


@pytest.mark.parametrize("text", ["9464", "host:", "host:70000", "host:http"])
def test_a_bad_metrics_address_names_the_setting(text: str) -> None:
    from bot.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="GPUBOT_METRICS_ADDRESS"):
        load_settings(GPUBOT_METRICS_ADDRESS=text)
