"""Slack's rate limit (HTTP 429 + Retry-After) against the bot's real Web API client:
waited out when it passes, and an owed message is never lost when it does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from handlers.notifier import SlackNotifier, web_client
from bot.domain.errors import MessageDelayed
from bot.domain.lease import Lease, LeaseStatus
from bot.ports import AccessInfo
from tests.slack_standin import SlackStandIn

BOB = "U0BOB00002"
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def lease(lease_id: int) -> Lease:
    return Lease(user_id=BOB, duration=timedelta(hours=24), created_at=NOW, id=lease_id,
                 status=LeaseStatus.ACTIVE, port=45000 + lease_id,
                 expires_at=NOW + timedelta(hours=24))


def notifier(standin: SlackStandIn, **client: int) -> SlackNotifier:
    return SlackNotifier(web_client(standin.bot_token, standin.api_url, **client),
                         admin_channel=None, extend_by=timedelta(hours=24),
                         gpus=list)


def refusals(standin: SlackStandIn) -> int:
    return sum(1 for c in standin.calls("chat.postMessage") if c.error == "ratelimited")


def test_a_burst_of_reminders_is_waited_out_and_every_one_arrives() -> None:
    with SlackStandIn(post_limit=(2, 1.0)) as standin:
        bot = notifier(standin)
        for i in range(1, 7):
            bot.reminder(lease(i), timedelta(hours=1))
        texts = [m.text for m in standin.messages(standin.dm_channel(BOB))]
        assert [t.split("Lease ")[1][:1] for t in texts] == list("123456"), texts
        assert refusals(standin) >= 2  # the limit was really hit, twice, and waited out


def test_an_owed_message_still_refused_raises_so_its_effect_is_redone() -> None:
    with SlackStandIn(post_limit=(1, 60.0)) as standin:
        bot = notifier(standin, rate_limit_retries=0)
        bot.reminder(lease(1), timedelta(hours=1))
        with pytest.raises(MessageDelayed, match="sent again"):
            bot.reminder(lease(2), timedelta(hours=1))
        with pytest.raises(MessageDelayed):
            bot.claim_failed(lease(3), "Docker could not start the Jupyter container.")
        # not owed: a progress line or a re-sent password is not worth an error
        bot.progress(lease(4), "Starting your environment…")
        bot.access_resend(lease(5), AccessInfo(url="http://gpu-host:45005/", password="x" * 20))
        assert refusals(standin) == 4
