"""Approvals that no admin can see, withdrawn requests, and the flood rule (issue 11.11),
with the real notifier against the Slack stand-in.

The flood rule under test: a request reuses the admin-channel message of a request by
the same person withdrawn less than an hour ago, instead of posting a new one.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.lease import Lease, LeaseStatus
from handlers import notifier as notifier_module
from handlers.notifier import SlackNotifier, web_client
from tests.fakes.gpus import FakeInventory
from tests.fakes.services import build_harness
from tests.slack_standin import SlackStandIn
from tests.slack_standin.config import Channel, StandInConfig

BOB, CAROL = "U0BOB00002", "U0CAROL003"
ADMINS = "C0GPUADMIN"
OUTSIDE = "C0NOTJOINED"  # a public channel the app was never invited to
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture
def slack():  # type: ignore[no-untyped-def]
    config = StandInConfig()
    config = dataclasses.replace(config, channels=(
        *config.channels, Channel(OUTSIDE, "gpu-approvals", bot_is_member=False)))
    with SlackStandIn(config) as standin:
        yield standin


def slack_notifier(slack: SlackStandIn, channel: str | None) -> SlackNotifier:
    return SlackNotifier(web_client(slack.bot_token, slack.api_url), admin_channel=channel,
                         extend_by=timedelta(hours=24), gpus=list)


def request(lease_id: int, user: str = BOB) -> Lease:
    return Lease(user_id=user, duration=timedelta(days=5), created_at=NOW, id=lease_id,
                 status=LeaseStatus.PENDING_APPROVAL)


def actions(message) -> list[dict]:  # type: ignore[no-untyped-def]
    return [b for b in message.blocks if b["type"] == "actions"]


# --------------------------------------------------- nobody can approve: say so at once
@pytest.mark.parametrize(("channel", "why"), [
    (None, "no admin channel is set up"),
    (OUTSIDE, "cannot post in the admin channel (not_in_channel)"),
    ("C0DOESNOTEXIST", "cannot post in the admin channel (channel_not_found)"),
])
def test_a_request_no_admin_can_see_tells_its_holder_at_once(
        db, slack: SlackStandIn, channel: str | None, why: str) -> None:
    kit = build_harness(db, notifier=slack_notifier(slack, channel), inventory=FakeInventory())
    lease = kit.claims.claim(user_id=BOB, duration=timedelta(days=5))
    assert lease.status is LeaseStatus.PENDING_APPROVAL
    [dm] = slack.dms(BOB)
    assert "no admin can see the request" in dm.text and why in dm.text
    assert f"/gpu release {lease.id}" in dm.text
    assert "I'll DM you the decision" not in dm.text


def test_a_request_the_admins_see_promises_the_decision(slack: SlackStandIn) -> None:
    slack_notifier(slack, ADMINS).approval_requested(request(1))
    [posted] = slack.messages(ADMINS)
    assert actions(posted)
    assert "I'll DM you the decision" in slack.dms(BOB)[0].text


# ------------------------------------------------------------------- withdrawn
def test_a_withdrawn_request_loses_its_buttons(slack: SlackStandIn) -> None:
    bot = slack_notifier(slack, ADMINS)
    bot.approval_requested(request(1))
    bot.approval_withdrawn(request(1))
    [message] = slack.messages(ADMINS)
    assert "(lease 1) was withdrawn" in message.text and not actions(message)
    assert message.history, "updated in place"
    # clicking a stale button (a client that had not refreshed) is for the action handler;
    # the message itself no longer offers it


def test_a_withdrawal_the_notifier_never_posted_is_a_no_op(slack: SlackStandIn) -> None:
    slack_notifier(slack, ADMINS).approval_withdrawn(request(9))  # posted before a restart
    assert slack.messages(ADMINS) == [] and slack.calls("chat.update") == []


# ------------------------------------------------------------------- the flood
def test_claim_then_withdraw_in_a_loop_edits_one_message_and_posts_no_new_one(
        slack: SlackStandIn) -> None:
    bot = slack_notifier(slack, ADMINS)
    for lease_id in range(1, 21):
        bot.approval_requested(request(lease_id))
        bot.approval_withdrawn(request(lease_id))
    bot.approval_requested(request(21))
    [message] = slack.messages(ADMINS)
    assert "(lease 21)" in message.all_text and actions(message), "the live request, with buttons"
    assert len(slack.calls("chat.postMessage")) == 1 + 21  # one admin post, 21 DMs to Bob

    # two open at once (max_leases_per_user): two messages, both reused afterwards
    bot.approval_requested(request(22))
    bot.approval_withdrawn(request(21))
    bot.approval_withdrawn(request(22))
    bot.approval_requested(request(23))
    bot.approval_requested(request(24))
    assert sorted(m.all_text.split("(lease ")[1][:2] for m in slack.messages(ADMINS)) == ["23", "24"]

    # another person's request is theirs alone
    bot.approval_requested(request(25, user=CAROL))
    assert len(slack.messages(ADMINS)) == 3


def test_an_old_withdrawn_message_is_not_reused(slack: SlackStandIn,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    bot = slack_notifier(slack, ADMINS)
    bot.approval_requested(request(1))
    bot.approval_withdrawn(request(1))
    monkeypatch.setattr(notifier_module, "REUSE_WITHDRAWN_WITHIN", 0.0)  # an hour later
    bot.approval_requested(request(2))
    first, second = slack.messages(ADMINS)
    assert "withdrawn" in first.text and not actions(first)
    assert "(lease 2)" in second.all_text and actions(second)


def test_a_decided_request_is_never_reused(slack: SlackStandIn) -> None:
    bot = slack_notifier(slack, ADMINS)
    bot.approval_requested(request(1))
    bot.approval_decided(request(1), approved=False, by="U0ALICE001", reason="maintenance")
    bot.approval_requested(request(2))
    assert len(slack.messages(ADMINS)) == 2


def test_the_message_maps_are_bounded(slack: SlackStandIn,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifier_module, "MESSAGES_KEPT", 5)
    bot = slack_notifier(slack, ADMINS)
    for lease_id in range(1, 31):  # requests and starts that end without telling the notifier
        bot.approval_requested(request(lease_id, user=f"U0USER{lease_id:04d}"))
        bot.progress(request(lease_id), "Starting your environment…")
        bot.approval_withdrawn(request(lease_id, user=f"U0USER{lease_id:04d}"))
    assert len(bot._approvals) <= 5 and len(bot._progress) <= 5
    assert len(bot._withdrawn) <= 5
