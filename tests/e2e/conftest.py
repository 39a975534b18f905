"""The real ``gpubot serve`` process against the Slack stand-in, with real Docker,
SQLite and ``GPUBOT_FAKE_GPUS``."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import requests
from sqlalchemy import create_engine, text

from tests.infra import docker_engine as eng
from tests.integration.conftest import docker_client, lease_ids  # noqa: F401 (fixtures)
from tests.slack_standin import SlackStandIn
from tests.support import jupyter

ALICE, BOB, CAROL = "U0ALICE001", "U0BOB00002", "U0CAROL003"
ADMIN_CHANNEL = "C0GPUADMIN"


@dataclass
class ServedBot:
    process: subprocess.Popen[bytes]
    slack: SlackStandIn
    workdir: Path
    workspace_root: Path
    log: Path
    ports: tuple[int, int]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def query(bot: ServedBot, sql: str) -> list:
    engine = create_engine(f"sqlite:///{bot.workdir}/gpubot.db")
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)))
    finally:
        engine.dispose()


def told(bot: ServedBot, user: str = BOB) -> str | None:
    """'working' with a password that logs in, 'failed' with the reason, else None."""
    for message in reversed(bot.slack.dms(user)):
        if "could not start" in message.text or "has ended" in message.text:
            return "told: " + message.text
        found = re.search(r"\*Password\*\n`([^`]+)`", message.all_text)
        if found:
            url = re.search(r"http://127\.0\.0\.1:\d+", message.text).group(0)
            try:
                return "working" if jupyter.logs_in(url, found.group(1)) else "bad password"
            except requests.ConnectionError:
                return None  # not (or no longer) answering: keep waiting for news
    return None


def _env(slack: SlackStandIn, tmp_path: Path, low: int) -> dict[str, str]:
    return {**os.environ,
            "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": f"sqlite:///{tmp_path}/gpubot.db",
            "GPUBOT_FAKE_GPUS": "2", "GPUBOT_IMAGE": eng.TEST_IMAGE,
            "GPUBOT_PULL_MISSING_IMAGE": "false",
            "GPUBOT_WORKSPACE_ROOT": str(tmp_path / "workspaces"),
            "GPUBOT_PUBLIC_HOST": "127.0.0.1", "GPUBOT_BIND_ADDRESS": "127.0.0.1",
            "GPUBOT_PORT_RANGE": f"{low}-{low + 9}", "GPUBOT_MEM_LIMIT": "1g", "GPUBOT_CPUS": "1",
            "GPUBOT_SHM_SIZE": "64m", "GPUBOT_ADMINS": ALICE, "GPUBOT_ADMIN_CHANNEL": ADMIN_CHANNEL,
            "GPUBOT_TICK_SECONDS": "1", "GPUBOT_HOST_NAME": f"e2e-{low}",
            "GPUBOT_READY_TIMEOUT": "2m", "PYTHONUNBUFFERED": "1"}


def launch(slack: SlackStandIn, tmp_path: Path, *, http_port: int | None = None,
           extra: dict[str, str] | None = None, low: int | None = None) -> ServedBot:
    """Start ``gpubot serve``: Socket Mode, or HTTP mode on ``http_port``. A restart of
    the same bot passes the first one's ``ports[0]`` as ``low`` (same host and ports)."""
    low = low or random.randrange(20000, 30000, 10)
    env = _env(slack, tmp_path, low)
    if http_port is None:
        env["SLACK_APP_TOKEN"] = slack.app_token
    else:
        env.pop("SLACK_APP_TOKEN", None)
        env.update(SLACK_SIGNING_SECRET=slack.signing_secret, GPUBOT_HTTP_PORT=str(http_port))
    env.update(extra or {})
    log = tmp_path / "gpubot.log"
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=tmp_path, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    bot = ServedBot(process, slack, tmp_path, tmp_path / "workspaces", log, (low, low + 9))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gpubot serve exited {process.returncode}:\n{bot.log_text()}")
        if http_port is None and slack.calls("apps.connections.open"):
            try:
                slack.wait_for_connection(timeout=1)
                return bot
            except Exception:  # noqa: BLE001 - keep waiting until the deadline
                continue
        if http_port is not None and _listening(http_port):
            return bot
        time.sleep(0.1)
    pytest.fail(f"gpubot serve did not come up:\n{bot.log_text()}")


def stop(bot: ServedBot, docker_client) -> None:
    bot.process.send_signal(signal.SIGTERM)
    try:
        bot.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        bot.process.kill()
    for container in docker_client.containers.list(all=True, filters={"label": "gpubot.lease"},
                                                   ignore_removed=True):
        if container.labels.get("gpubot.user", "").startswith("U0"):
            container.remove(force=True)
    for network in docker_client.networks.list(filters={"label": "gpubot.lease"}):
        if (network.attrs.get("Labels") or {}).get("gpubot.host", "").startswith("e2e-"):
            try:  # the served bots' lease networks: the next bot starts at lease 1 again
                network.remove()
            except docker.errors.APIError:
                pass  # still in use by a container another test owns


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def served(slack_standin: SlackStandIn, docker_client, tmp_path: Path) -> Iterator[ServedBot]:
    bot = launch(slack_standin, tmp_path)
    try:
        yield bot
    finally:
        stop(bot, docker_client)
