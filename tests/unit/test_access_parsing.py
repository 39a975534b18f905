"""`claim … env <name>`, GPUBOT_ENVIRONMENTS and the access settings, parsed."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from bot.domain.environments import Environment, choose, driver_runs, parse_environments
from bot.domain.errors import DomainError
from bot.services.resources import LeaseConfig
from bot.settings import SettingsError, load_settings
from handlers.grammar import Verb, parse

D = timedelta(hours=24)


@pytest.mark.parametrize("text, env, count, model", [
    ("claim 24h env conda", "conda", 1, None),
    ("claim env conda", "conda", 1, None),
    ("claim 2d 2 gpus a100 env Conda", "conda", 2, "a100"),
    ("claim env conda 2d", "conda", 1, None),
    ("claim 24h a100", None, 1, "a100"),
])
def test_env_may_stand_anywhere_in_a_claim(text: str, env: str | None, count: int,
                                           model: str | None) -> None:
    cmd = parse(text, default_duration=D)
    assert (cmd.verb, cmd.environment, cmd.gpu_count, cmd.model) == (Verb.CLAIM, env, count,
                                                                      model)


@pytest.mark.parametrize("text", ["claim 24h env", "claim env 12", "claim env a;b"])
def test_env_without_a_name_is_refused(text: str) -> None:
    with pytest.raises(DomainError, match="/gpu envs"):
        parse(text, default_duration=D)


def test_envs_is_a_command() -> None:
    assert parse("envs", default_duration=D).verb is Verb.ENVS


def test_environments_setting_first_is_default_and_unset_is_gpubot_image() -> None:
    assert parse_environments("", "img:1") == (Environment("default", "img:1"),)
    envs = parse_environments("main=a/b:1, Conda=c@sha256:ab", "x")
    assert envs == (Environment("main", "a/b:1"), Environment("conda", "c@sha256:ab"))
    assert choose(envs, None).name == "main" and choose(envs, "CONDA").image == "c@sha256:ab"
    for bad in ("noequals", "a=b,a=c", "=img", "a=", "a=b c"):
        with pytest.raises(ValueError):
            parse_environments(bad, "x")


@pytest.mark.parametrize("driver, needed, runs", [
    ("12.4", "12.4", True), ("12.4", "12.1", True), ("12.4", "12.8", False),
    ("11.8", "12.0", False), (None, "12.4", None), ("12.4", None, None),
    (None, "none", True), ("12.4", "cuda", None)])
def test_the_driver_runs_an_image_of_its_cuda_or_older(driver: str | None, needed: str | None,
                                                       runs: bool | None) -> None:
    assert driver_runs(driver, needed) is runs


def test_proxy_settings_need_a_domain_and_both_tls_files() -> None:
    s = load_settings(GPUBOT_PROXY="caddy", GPUBOT_PUBLIC_DOMAIN="GPU.Lab.Example.")
    assert s.domain == "gpu.lab.example"
    assert load_settings(GPUBOT_PUBLIC_DOMAIN="gpu.lab.example").domain is None  # proxy off
    for bad in ({"GPUBOT_PROXY": "caddy"}, {"GPUBOT_PROXY": "nginx"},
                {"GPUBOT_TLS_KEY": "/k"}, {"GPUBOT_PROXY_LISTEN": "443"},
                {"GPUBOT_ENVIRONMENTS": "x"}):
        with pytest.raises(SettingsError):
            load_settings(**bad)


def test_the_url_with_a_proxy_is_the_leases_host_and_without_it_the_port() -> None:
    from datetime import datetime, timezone
    from pathlib import Path

    from bot.domain.lease import Lease

    def lease(label: str | None, address: str | None = None) -> Lease:
        return Lease(user_id="U1", duration=timedelta(hours=1), port=8801, route_label=label,
                     address=address, created_at=datetime(2026, 12, 1, tzinfo=UTC))

    direct = LeaseConfig(host="h", port_range=(1, 2), public_host="gpu1", workspace_root=Path("/w"))
    assert direct.url(lease("abc")) == "http://gpu1:8801/lab"
    assert direct.url(lease(None, "10.1.0.7")) == "http://10.1.0.7:8801/lab"  # on a node
    https = LeaseConfig(host="h", port_range=(1, 2), public_host="gpu1",
                        workspace_root=Path("/w"), proxy_domain="gpu.lab", proxy_port=443)
    assert https.url(lease("abc", "10.1.0.7")) == "https://abc.gpu.lab/lab"
    assert https.url(lease(None)) == "http://gpu1:8801/lab"  # granted before the proxy was on
