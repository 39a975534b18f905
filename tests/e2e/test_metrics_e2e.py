"""A real Prometheus server (Debian's ``prometheus``) scraping a real ``gpubot serve``
every second; PromQL through Prometheus' HTTP API sees a claim and a release."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import BOB, launch, stop
from tests.infra.docker_engine import free_port
from tests.slack_standin import SlackStandIn
from tests.support.tools import tool

pytestmark = [pytest.mark.e2e, pytest.mark.docker]
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "gpubot-dashboard.json"


@dataclass
class Prometheus:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def query(self, promql: str) -> list[dict]:
        """An instant query: the result vector (``[]`` when nothing matches)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, promql: str) -> float | None:
        """The single value of ``promql``, or None when it has no sample (yet)."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, promql: str, check: Callable[[float], bool], timeout: float = 30) -> float:
        deadline, seen = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            seen = self.value(promql)
            if seen is not None and check(seen):
                return seen
            time.sleep(0.5)
        pytest.fail(f"{promql} = {seen} after {timeout}s\n{self.log.read_text()[-2000:]}")


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Callable[[int], Prometheus]]:
    """Starts Prometheus scraping 127.0.0.1:<port> every second; stopped by its PID."""
    binary = tool("prometheus", "prometheus")
    started: list[Prometheus] = []

    def start(target_port: int) -> Prometheus:
        folder = tmp_path / "prometheus"
        folder.mkdir()
        config = folder / "prometheus.yml"
        config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: gpubot
    static_configs: [{{targets: ["127.0.0.1:{target_port}"]}}]
""")
        port, log = free_port(), folder / "prometheus.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT)
        server = Prometheus(process, f"http://127.0.0.1:{port}", log)
        started.append(server)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, f"prometheus exited:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return server
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"prometheus did not become ready:\n{log.read_text()}")

    yield start
    for server in started:
        server.process.terminate()
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()


def test_prometheus_sees_a_claim_and_a_release(slack_standin: SlackStandIn, docker_client,
                                               prometheus_for, tmp_path: Path) -> None:
    metrics_port = free_port()
    bot = launch(slack_standin, tmp_path,
                 extra={"GPUBOT_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}"})
    try:
        prom = prometheus_for(metrics_port)
        equal = lambda expected: (lambda v: v == expected)  # noqa: E731
        prom.wait_for('up{job="gpubot"}', equal(1))
        prom.wait_for('gpubot_gpus{state="free"}', equal(2))  # GPUBOT_FAKE_GPUS=2
        assert prom.value("sum(gpubot_gpus)") == 2
        assert prom.value('gpubot_leases{status="active"}') == 0
        assert prom.value("gpubot_queue_length") == 0
        assert prom.value("gpubot_idle_reclaims_total") == 0

        slack_standin.slash_command(BOB, "claim 2h")
        try:
            slack_standin.wait_for(lambda: [m for m in slack_standin.dms(BOB)
                                            if "Password" in m.all_text], timeout=120)
        except AssertionError:
            pytest.fail(f"no access DM; gpubot's log:\n{bot.log_text()[-3000:]}")
        prom.wait_for('gpubot_gpus{state="leased"}', equal(1))
        assert prom.value('gpubot_gpus{state="free"}') == 1
        prom.wait_for('gpubot_leases{status="active"}', equal(1))
        prom.wait_for("gpubot_claim_ready_seconds_count", equal(1))
        ready = prom.value("gpubot_claim_ready_seconds_sum")
        assert ready is not None and 0 < ready < 120
        median = prom.value("histogram_quantile(0.5, sum by (le) "
                            "(gpubot_claim_ready_seconds_bucket))")
        assert median is not None and 0 < median <= 120
        prom.wait_for("gpubot_effects_pending", equal(0))

        slack_standin.slash_command(BOB, "release")
        prom.wait_for('gpubot_leases{status="released"}', equal(1))
        prom.wait_for('gpubot_gpus{state="free"}', equal(2))
        assert prom.value('gpubot_gpus{state="leased"}') == 0
        assert prom.value('gpubot_leases{status="active"}') == 0
        assert prom.value('gpubot_job_duration_seconds_count{task="reconcile"}') >= 1
        # No label of ours collides with the target's (Prometheus would rename it).
        assert not prom.query('{__name__=~"gpubot_.+", exported_job!=""}')
        assert not prom.query('{__name__=~"gpubot_.+", exported_instance!=""}')
        # The happy path makes no failed Slack call (the counter has no series yet).
        assert prom.value("sum(gpubot_slack_api_errors_total) or vector(0)") == 0
        check_the_dashboard(prom, metrics_port)
        slack_standin.assert_no_problems()
    finally:
        stop(bot, docker_client)


def exported_names(metrics_port: int) -> set[str]:
    """Every sample name the bot's /metrics declares (a counter's ``_total``, a
    histogram's ``_bucket``/``_count``/``_sum``), samples or not."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        families = text_string_to_metric_families(r.read().decode())
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    return {f.name + s for f in families for s in suffixes.get(f.type, ("",))}


def check_the_dashboard(prom: Prometheus, metrics_port: int) -> None:
    """Every query of deploy/grafana's dashboard is valid PromQL (Prometheus evaluates it)
    over metrics the bot really exports."""
    exported = exported_names(metrics_port)
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        unknown = set(re.findall(r"gpubot_[a-z_]+", expr)) - exported
        assert not unknown, f"{expr}: the bot exports no {sorted(unknown)}"
        prom.query(expr.replace("$__rate_interval", "1m"))  # HTTP 400 on bad PromQL
    assert prom.value('sum(gpubot_gpus{state="free"})') == 2
