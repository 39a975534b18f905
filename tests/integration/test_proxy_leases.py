"""HTTPS per lease through a real Caddy, with real Jupyter containers (issue 13.1).

The whole graph (``bot.bootstrap.build`` with settings GPUBOT_PROXY=caddy) runs on the
test engine; Caddy is started by PID for the module. Lease host names are resolved to
127.0.0.1 inside the test client only (``socket.getaddrinfo`` patched), so TLS sees the
real host names (SNI, certificate) and Jupyter the real Host header.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import ssl
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import docker
import pytest
import requests

from bot.adapters.caddy import NOT_FOUND_BODY
from bot.bootstrap import Gpubot, build
from bot.db import migrate
from bot.db.engine import Database
from bot.domain.lease import LeaseStatus
from bot.settings import load_settings
from tests.fakes.notifier import RecordingNotifier
from tests.infra import docker_engine as eng
from tests.support.caddy import DOMAIN, RunningCaddy, running_caddy
from tests.support.jupyter import login
from tests.support.lease_ids import start_lease_ids_at

pytestmark = pytest.mark.docker
USER_A, USER_B = "U0PROXYAAA", "U0PROXYBBB"
_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture(scope="module")
def caddy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCaddy]:
    with running_caddy(tmp_path_factory.mktemp("caddy")) as running:
        yield running


@pytest.fixture(autouse=True)
def lease_hosts_resolve_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(f".{DOMAIN}"):
            host = "127.0.0.1"
        return _real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def host_address() -> str:
    """A non-loopback address of this host: GPUBOT_BIND_ADDRESS in direct mode."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.123", 9))  # no packet is sent: only the route is looked up
        return str(probe.getsockname()[0])


@pytest.fixture
def bot(caddy: RunningCaddy, docker_client: docker.DockerClient, lease_ids: eng.LeaseIds,
        tmp_path: Path) -> Iterator[Gpubot]:
    low = random.randrange(30000, 39000, 10)
    settings = load_settings(
        DATABASE_URL=f"sqlite:///{tmp_path}/gpubot.db", GPUBOT_FAKE_GPUS=2,
        GPUBOT_HOST_NAME=eng.TEST_HOST, GPUBOT_IMAGE=eng.TEST_IMAGE,
        GPUBOT_ENVIRONMENTS=f"default={eng.TEST_IMAGE},conda={eng.TEST_ENV_CONDA_IMAGE}",
        GPUBOT_PULL_MISSING_IMAGE=False, GPUBOT_WORKSPACE_ROOT=str(tmp_path / "ws"),
        GPUBOT_BIND_ADDRESS=host_address(), GPUBOT_PORT_RANGE=f"{low}-{low + 9}",
        GPUBOT_MEM_LIMIT="768m", GPUBOT_CPUS=1.5, GPUBOT_SHM_SIZE="96m",
        GPUBOT_PROXY="caddy", GPUBOT_PUBLIC_DOMAIN=DOMAIN,
        GPUBOT_PROXY_LISTEN=f"127.0.0.1:{caddy.https_port}",
        GPUBOT_PROXY_ADMIN_URL=caddy.admin_url, GPUBOT_SECRET_KEY=_key())
    migrate.upgrade(settings.database_url)
    db = Database(settings.database_url)
    start_lease_ids_at(db, lease_ids.new())
    for _ in range(20):  # the block is the session's own
        lease_ids.new()
    gpubot = build(settings, notifier=RecordingNotifier(), db=db, background=False)
    gpubot.resources.proxy.ensure_server()  # type: ignore[union-attr] - serve does this
    yield gpubot
    db.dispose()


def _key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def claim(bot: Gpubot, user: str, **kwargs: Any) -> tuple[int, str, str]:
    """Claim and start; (lease id, URL, password) from the access DM."""
    lease = bot.claims.claim(user_id=user, duration=timedelta(hours=1),
                             **kwargs)
    started = bot.claims.start(lease.id or 0)
    assert started.status is LeaseStatus.ACTIVE, started.failure_reason
    notifier = bot.resources.notifier
    sent = [s for s in notifier.of("access_ready") if s.lease_id == lease.id]  # type: ignore[attr-defined]
    return lease.id or 0, sent[-1].data["url"], sent[-1].data["password"]


def base(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def https_session(root: Path) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(root)
    return s


def wait_for_tls(s: requests.Session, url: str) -> None:
    """Caddy issues its wildcard certificate just after its first config load."""
    import time

    for _ in range(50):
        try:
            s.get(url, timeout=5)
            return
        except requests.exceptions.SSLError:
            time.sleep(0.2)


async def execute(base_url: str, kernel: str, cookies: str, context: ssl.SSLContext,
                  code: str) -> str:
    """Jupyter's kernel protocol over the proxied WebSocket: one execute_request on the
    shell channel, the stream output it produced."""
    msg_id = uuid.uuid4().hex
    message = {"header": {"msg_id": msg_id, "msg_type": "execute_request",
                          "session": uuid.uuid4().hex, "username": "test", "version": "5.3",
                          "date": datetime.now(UTC).isoformat()},
               "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
               "content": {"code": code, "silent": False, "store_history": False,
                           "user_expressions": {}, "allow_stdin": False}}
    out = []
    ws_url = base_url.replace("https", "wss", 1) + f"/api/kernels/{kernel}/channels"
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(ws_url, ssl=context, headers={
                "Origin": base_url, "Cookie": cookies}) as ws:
            await ws.send_str(json.dumps(message))
            async for frame in ws:
                data = json.loads(frame.data)
                if data.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if data.get("msg_type") == "stream":
                    out.append(data["content"]["text"])
                if (data.get("msg_type") == "status"
                        and data["content"].get("execution_state") == "idle"):
                    return "".join(out)
    return "".join(out)


def test_https_login_per_lease_cookies_and_a_kernel_over_the_websocket(
        bot: Gpubot, caddy: RunningCaddy, docker_client: docker.DockerClient,
        tmp_path: Path) -> None:
    a_id, a_url, a_password = claim(bot, USER_A)
    b_id, b_url, _ = claim(bot, USER_B)
    a, b = base(a_url), base(b_url)
    label = urlsplit(a_url).hostname.split(".")[0]  # type: ignore[union-attr]
    assert a_url == f"https://{label}.{DOMAIN}:{caddy.https_port}/lab"
    assert len(label) == 16 and str(a_id) not in label and a != b

    root = caddy.root_pem(tmp_path / "root.pem")
    s = https_session(root)
    wait_for_tls(s, a)
    assert s.get(f"{a}/api/status", timeout=10).status_code == 403
    assert login(s, a, a_password).status_code == 302
    assert s.get(f"{a}/api/status", timeout=10).status_code == 200  # logged in, over HTTPS
    session_cookie = next(c for c in s.cookies if c.name.startswith("username-"))
    assert session_cookie.secure, "Jupyter behind the proxy must mark its session cookie Secure"

    # A's session cookies, even renamed to what B's Jupyter calls its own, open nothing.
    stolen = https_session(root)
    b_host = urlsplit(b).netloc.replace(":", "-")
    for cookie in s.cookies:
        stolen.cookies.set(cookie.name, cookie.value)
        if cookie.name.startswith("username-"):
            stolen.cookies.set(f"username-{b_host}", cookie.value)
    assert stolen.get(f"{b}/api/status", timeout=10).status_code == 403
    assert all(c.domain.startswith(label) for c in s.cookies)  # host-only: never B's

    # A kernel, driven through the WebSocket the proxy carries.
    xsrf = s.cookies.get("_xsrf") or ""
    kernel = s.post(f"{a}/api/kernels", json={"name": "python3"},
                    headers={"X-XSRFToken": xsrf}, timeout=60)
    assert kernel.status_code == 201, kernel.text
    cookies = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
    context = ssl.create_default_context(cafile=str(root))
    output = asyncio.run(execute(a, kernel.json()["id"], cookies, context,
                                 "import os; print(6 * 7, os.getcwd())"))
    assert output.strip() == "42 /workspace"

    # Jupyter's own port: published on loopback only, nothing on GPUBOT_BIND_ADDRESS.
    container = docker_client.containers.get(f"gpubot-{a_id}")
    bindings = container.attrs["HostConfig"]["PortBindings"]["8888/tcp"]
    port = int(bindings[0]["HostPort"])
    assert [x["HostIp"] for x in bindings] == ["127.0.0.1"]
    with pytest.raises(OSError):
        socket.create_connection((bot.settings.bind_address, port), timeout=3).close()
    socket.create_connection(("127.0.0.1", port), timeout=3).close()  # Caddy's way in


def test_an_ended_lease_answers_no_jupyter_and_one_reconcile_repairs_the_proxy(
        bot: Gpubot, caddy: RunningCaddy, tmp_path: Path) -> None:
    a_id, a_url, _ = claim(bot, USER_A)
    b_id, b_url, _ = claim(bot, USER_B)
    a, b = base(a_url), base(b_url)
    a_label, b_label = (urlsplit(u).hostname.split(".")[0] for u in (a_url, b_url))  # type: ignore[union-attr]
    s = https_session(caddy.root_pem(tmp_path / "root.pem"))
    wait_for_tls(s, a)
    assert s.get(f"{a}/login", timeout=10).status_code == 200

    bot.use_cases.leases.release(user_id=USER_A, lease_id=a_id)
    gone = s.get(f"{a}/login", timeout=10)
    assert (gone.status_code, gone.text) == (404, NOT_FOUND_BODY)  # route_remove, at once

    # The world drifts: an admin puts A's route back by hand, Caddy restarts with no
    # config at all (B's route lost), and then it is the reconciler's turn.
    proxy = bot.resources.proxy
    assert proxy is not None
    live_upstream = proxy.routes()[b_label]  # a Jupyter that answers, for the stale route
    caddy.restart(resume=False)
    proxy.ensure_server()
    proxy.add_route(a_label, live_upstream)
    assert set(proxy.routes()) == {a_label}
    report = bot.reconciler.run()
    assert report.routes_removed == 1 and report.routes_added == 1, report
    assert set(proxy.routes()) == {b_label}
    wait_for_tls(s, b)
    assert s.get(f"{a}/login", timeout=10).status_code == 404
    assert s.get(f"{b}/login", timeout=10).status_code == 200
    assert "routes" not in report.failed_steps


async def terminal(base_url: str, name: str, cookies: str, context: ssl.SSLContext,
                   line: str, until: str) -> str:
    """A Jupyter terminal over the proxied WebSocket: type ``line``, read until ``until``."""
    ws_url = base_url.replace("https", "wss", 1) + f"/terminals/websocket/{name}"
    seen = ""
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(ws_url, ssl=context, headers={
                "Origin": base_url, "Cookie": cookies}) as ws:
            await ws.send_str(json.dumps(["stdin", line + "\r"]))
            try:
                async with asyncio.timeout(30):
                    async for frame in ws:
                        kind, *data = json.loads(frame.data)
                        if kind == "stdout":
                            seen += "".join(data)
                        if until in seen.replace(line, ""):  # the output, not the echo
                            return seen
            except TimeoutError:
                pass
    return seen


def test_a_claim_with_env_starts_that_image_and_an_unknown_name_lists_the_names(
        bot: Gpubot, caddy: RunningCaddy, docker_client: docker.DockerClient,
        tmp_path: Path) -> None:
    from bot.domain.errors import DomainError

    eng.require_image(docker_client, eng.TEST_ENV_CONDA_IMAGE)
    lease_id, url, password = claim(bot, USER_A, environment="conda")
    container = docker_client.containers.get(f"gpubot-{lease_id}")
    assert container.attrs["Config"]["Image"] == eng.TEST_ENV_CONDA_IMAGE
    assert container.labels["gpubot.env"] == "conda"

    # conda is ready in a Jupyter terminal, reached through the proxy's WebSocket too.
    root = caddy.root_pem(tmp_path / "root.pem")
    s, a = https_session(root), base(url)
    wait_for_tls(s, a)
    assert login(s, a, password).status_code == 302
    made = s.post(f"{a}/api/terminals", headers={"X-XSRFToken": s.cookies.get("_xsrf") or ""},
                  timeout=30)
    assert made.status_code == 200, made.text
    cookies = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
    seen = asyncio.run(terminal(a, made.json()["name"], cookies,
                                ssl.create_default_context(cafile=str(root)),
                                "echo ENV=$CONDA_DEFAULT_ENV $(type -t conda) $(which python)",
                                until="ENV=base function /opt/conda/bin/python"))
    assert "ENV=base function /opt/conda/bin/python" in seen, seen

    before = bot.use_cases.all_leases(include_ended=True)
    with pytest.raises(DomainError) as refused:
        bot.claims.claim(user_id=USER_B, duration=timedelta(hours=1),
                         environment="tensorflow")
    assert "`default`" in refused.value.message and "`conda`" in refused.value.message
    assert len(bot.use_cases.all_leases(include_ended=True)) == len(before)  # nothing written
