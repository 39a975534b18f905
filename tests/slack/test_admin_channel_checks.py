"""Can anyone approve? Checked at start-up (one warning line) and by `gpubot doctor`,
against the Slack stand-in (issue 11.11)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.bootstrap import admin_channel_warning
from bot.doctor import run_checks
from bot.settings import Settings
from tests.slack_standin import SlackStandIn
from tests.slack_standin.config import Channel, StandInConfig

ADMINS, OUTSIDE = "C0GPUADMIN", "C0NOTJOINED"


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    config = StandInConfig()
    config = dataclasses.replace(config, channels=(
        *config.channels, Channel(OUTSIDE, "gpu-approvals", bot_is_member=False)))
    with SlackStandIn(config) as standin:
        yield standin


def settings(slack: SlackStandIn, channel: str | None) -> Settings:
    return Settings(SLACK_BOT_TOKEN=slack.bot_token, SLACK_API_URL=slack.api_url,
                    GPUBOT_ADMIN_CHANNEL=channel)


@pytest.mark.parametrize(("channel", "expected"), [
    (None, "GPUBOT_ADMIN_CHANNEL is not set"),
    (OUTSIDE, "not_in_channel (invite the app"),
    ("C0DOESNOTEXIST", "channel_not_found"),
])
def test_start_up_warns_when_nobody_could_approve(slack: SlackStandIn, channel: str | None,
                                                  expected: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.bootstrap"):
        problem = admin_channel_warning(settings(slack, channel))
    assert problem is not None and expected in problem
    [line] = [r.getMessage() for r in caplog.records if r.name == "bot.bootstrap"]
    assert line.startswith("approvals: ") and expected in line


def test_start_up_is_quiet_when_the_bot_can_post_and_leaves_no_trace(
        slack: SlackStandIn, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.bootstrap"):
        assert admin_channel_warning(settings(slack, ADMINS)) is None
    assert not [r for r in caplog.records if r.name == "bot.bootstrap"]
    assert [c.method for c in slack.calls() if c.method.startswith("chat.")] == [
        "chat.postMessage", "chat.delete"]
    assert slack.messages(ADMINS) == [], "the probe line is deleted"


def doctor(tmp_path: Path, slack: SlackStandIn | None, channel: str | None):  # type: ignore[no-untyped-def]
    results = run_checks(
        fake_gpus=1, host="lab-1", image="gpubot-jupyter:test", workspace_root=tmp_path,
        bind_address="127.0.0.1", port_range=(1, 0), database_check=lambda: (True, "ok"),
        slack_token=slack.bot_token if slack else None,
        slack_api_url=slack.api_url if slack else "https://slack.com/api/",
        admin_channel=channel, docker_client_factory=_no_docker, min_free_bytes=1)
    return {r.name: r for r in results}["Admin channel"]


def _no_docker() -> None:
    raise ConnectionError("no Docker in this test")


def test_doctor_fails_when_the_bot_cannot_post_in_the_admin_channel(
        tmp_path: Path, slack: SlackStandIn) -> None:
    unset = doctor(tmp_path, slack, None)
    assert not unset.ok and "can never be approved" in unset.detail
    assert "GPUBOT_ADMIN_CHANNEL" in unset.fix
    outside = doctor(tmp_path, slack, OUTSIDE)
    assert not outside.ok and "not_in_channel" in outside.detail and "/invite" in outside.fix
    fine = doctor(tmp_path, slack, ADMINS)
    assert fine.ok and fine.detail.startswith(ADMINS), fine
    assert slack.messages(ADMINS) == []


def test_doctor_skips_the_check_without_a_slack_token(tmp_path: Path) -> None:
    skipped = doctor(tmp_path, None, ADMINS)
    assert skipped.ok and skipped.detail.startswith("skipped:")
