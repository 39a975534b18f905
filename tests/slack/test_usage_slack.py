"""`/gpu usage` and `/gpu report` through Socket Mode (issue 12.3, 12.4): figures from the
samples the idle sampler took, and the chart arriving in the admin channel through
Slack's external upload flow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.errors import DomainError
from bot.domain.usage import UsageReport
from handlers.notifier import web_client
from handlers.report import SlackNames, upload_report
from tests.slack.conftest import ADMIN_CHANNEL, ALICE, BOB, CAROL, Bot
from tests.slack_standin import SlackStandIn

PNG = b"\x89PNG\r\n\x1a\n"


def used(bot: Bot, user: str, util: int, hours: int) -> None:
    """``user`` holds a GPU at ``util`` % for ``hours``, sampled every hour."""
    before = len([m for m in bot.slack.dms(user) if "Password" in m.all_text])
    bot.gpu(user, "claim 8h")
    bot.wait(lambda: len([m for m in bot.slack.dms(user) if "Password" in m.all_text]) > before)
    kit = bot.kit
    held = {u for row in kit.gpubot.use_cases.leases_of(user) for u in row.lease.gpu_uuids}
    for gpu in kit.inventory.gpus:
        if gpu.uuid in held:
            kit.inventory.set(gpu.index, utilization_percent=util)
    for _ in range(hours):
        kit.clock.advance(timedelta(hours=1))
        kit.idle.sample()


def answer(bot: Bot, user: str, words: str) -> str:
    return bot.wait(lambda: [t for t in bot.ephemeral_texts(user) if words in t])[-1]


def test_usage_shows_yours_and_admins_also_see_the_lab(bot: Bot) -> None:
    used(bot, BOB, 80, 3)
    used(bot, CAROL, 30, 2)  # BOB keeps his GPU at 80 % meanwhile

    bot.gpu(BOB, "usage")
    mine = answer(bot, BOB, "Your GPU usage")
    assert "*Last 7 days:* 5.0 GPU-hours, 1 lease, mean utilization 80 %" in mine, mine
    assert "*Last 30 days:* 5.0 GPU-hours" in mine
    assert "The lab" not in mine and CAROL not in mine  # nobody else's figures

    bot.gpu(ALICE, "usage")
    lab = answer(bot, ALICE, "The lab")
    assert "*Last 7 days:* no leases" in lab
    assert "*The lab, last 7 days:* 7.0 GPU-hours, 2 leases" in lab, lab
    assert lab.index(f"<@{BOB}> 5.0 GPU-hours") < lab.index(f"<@{CAROL}> 2.0 GPU-hours")
    bot.slack.assert_acks_within(3.0)
    bot.slack.assert_no_problems()


def test_report_posts_the_chart_to_the_admin_channel_for_admins_only(bot: Bot) -> None:
    used(bot, BOB, 90, 4)

    bot.gpu(BOB, "report")
    assert "Only a gpubot admin" in answer(bot, BOB, "admin")
    assert bot.slack.files() == []

    bot.gpu(ALICE, "report")
    assert "in the admin channel" in answer(bot, ALICE, "usage report")
    [chart] = bot.slack.files(ADMIN_CHANNEL)
    assert chart.data is not None and chart.data.startswith(PNG)
    assert chart.mimetype == "image/png" and chart.filename.endswith(".png")
    assert chart.alt_txt and "GPU" in chart.alt_txt
    [shared] = [m for m in bot.slack.messages(ADMIN_CHANNEL) if m.files]
    assert shared.files == [chart.id]
    assert "GPU usage" in shared.text and f"<@{BOB}> 4.0 h (90 %)" in shared.text
    methods = [c.method for c in bot.slack.calls() if c.method.startswith("files.")]
    assert methods == ["files.getUploadURLExternal", "files.completeUploadExternal"]
    bot.slack.assert_acks_within(3.0)
    bot.slack.assert_no_problems()


def test_the_upload_says_why_it_cannot_arrive(slack_standin: SlackStandIn) -> None:
    """No admin channel, or one Slack does not know: a sentence an admin can act on; and
    the chart's names come from users.info, asked once per person."""
    client = web_client(slack_standin.bot_token, slack_standin.api_url)
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    report = UsageReport(now.date(), now, (), ())
    with pytest.raises(DomainError, match="GPUBOT_ADMIN_CHANNEL"):
        upload_report(client, None, report, PNG)
    with pytest.raises(DomainError, match="channel_not_found"):
        upload_report(client, "C0NOWHERE0", report, PNG)
    assert slack_standin.files(ADMIN_CHANNEL) == []

    names = SlackNames(client)
    assert names(BOB) == "bob" and names("U0NOBODY00") == "U0NOBODY00"  # display name, or id
    names(BOB)
    assert len(slack_standin.calls("users.info")) == 2  # bob's name was kept
