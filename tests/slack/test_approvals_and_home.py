"""Admin approvals (buttons, Deny modal, refusals) and the App Home."""

from __future__ import annotations

from bot.db.repo import LeaseRepo
from bot.domain.lease import LeaseStatus
from tests.slack.conftest import ADMIN_CHANNEL, ALICE, BOB, CAROL, Bot


def request_message(bot: Bot):
    return bot.wait(lambda: next(iter(bot.slack.messages(ADMIN_CHANNEL)), None))


def status(bot: Bot, lease_id: int) -> LeaseStatus:
    with bot.kit.res.db.transaction() as s:
        return LeaseRepo(s).get(lease_id).status


def test_long_claim_is_approved_by_an_admin_only(bot: Bot) -> None:
    bot.gpu(BOB, "claim 5d")
    request = request_message(bot)
    assert f"<@{BOB}> asks for a GPU for 5d" in request.text
    assert bot.wait(lambda: [m for m in bot.slack.dms(BOB) if "needs an admin" in m.text])
    assert bot.kit.runtime.started == []

    bot.slack.block_action(CAROL, "gpu_approve", "1", message_ts=request.ts, channel=ADMIN_CHANNEL)
    refusal = bot.wait(lambda: bot.ephemeral_texts(CAROL))
    assert "Only a gpubot admin" in refusal[-1]
    assert status(bot, 1) is LeaseStatus.PENDING_APPROVAL
    assert bot.slack.message(ADMIN_CHANNEL, request.ts).history == []

    # a double click: both clicks reach the bot before the message loses its buttons
    first = bot.slack.block_action(ALICE, "gpu_approve", "1", message_ts=request.ts,
                                   channel=ADMIN_CHANNEL, wait=False)
    bot.slack.block_action(ALICE, "gpu_approve", "1", message_ts=request.ts, channel=ADMIN_CHANNEL)
    bot.slack.wait_ack(first.envelope_id)
    updated = bot.wait(lambda: (m := bot.slack.message(ADMIN_CHANNEL, request.ts)).history and m)
    assert f"approved by <@{ALICE}>" in updated.text
    assert not [b for b in updated.blocks if b["type"] == "actions"], "buttons removed"
    assert bot.wait(lambda: [m for m in bot.slack.dms(BOB) if "Password" in m.all_text])
    assert status(bot, 1) is LeaseStatus.ACTIVE
    assert len(bot.kit.runtime.started) == 1

    again = bot.wait(lambda: [t for t in bot.ephemeral_texts(ALICE) if "already decided" in t])
    assert f"already decided by <@{ALICE}>" in again[0]
    assert len(bot.kit.runtime.started) == 1
    bot.slack.assert_acks_within(3.0)
    bot.slack.assert_no_problems()


def test_deny_asks_for_a_reason_in_a_modal(bot: Bot) -> None:
    bot.gpu(BOB, "claim 1h 2 gpus")
    request = request_message(bot)
    bot.slack.block_action(CAROL, "gpu_deny", "1", message_ts=request.ts, channel=ADMIN_CHANNEL)
    assert "Only a gpubot admin" in bot.wait(lambda: bot.ephemeral_texts(CAROL))[-1]
    assert bot.slack.open_views(CAROL) == []

    bot.slack.block_action(ALICE, "gpu_deny", "1", message_ts=request.ts, channel=ADMIN_CHANNEL)
    modal = bot.wait(lambda: bot.slack.open_views(ALICE))[0]
    assert modal["callback_id"] == "gpu_deny_modal"
    bot.slack.view_submission(ALICE, values={"gpu_deny_reason": {"gpu_deny_reason": "Cluster maintenance"}})
    updated = bot.wait(lambda: (m := bot.slack.message(ADMIN_CHANNEL, request.ts)).history and m)
    assert f"denied by <@{ALICE}>" in updated.text and "Cluster maintenance" in updated.all_text
    dm = bot.wait(lambda: [m for m in bot.slack.dms(BOB) if "denied" in m.text])
    assert "Cluster maintenance" in dm[0].text
    assert status(bot, 1) is LeaseStatus.DENIED and bot.kit.runtime.started == []
    bot.slack.assert_no_problems()


def test_app_home_shows_leases_and_gpus_and_its_buttons_work(bot: Bot) -> None:
    bot.gpu(BOB, "claim 3h")
    bot.wait(lambda: [m for m in bot.slack.dms(BOB) if "Password" in m.all_text])
    bot.slack.app_home_opened(BOB)
    view = bot.wait(lambda: bot.slack.home_view(BOB))
    text = str(view)
    assert "3 of 4 GPUs free" in text and "*Lease 1*" in text and "GPU 3" in text
    view_id = bot.wait(lambda: bot.slack.calls("views.publish"))[-1].response["view"]["id"]
    bot.slack.block_action(BOB, "gpu_extend", "1", view_id=view_id)
    bot.wait(lambda: [m for m in bot.slack.dms(BOB) if "now ends" in m.text])
    bot.slack.block_action(BOB, "gpu_release", "1", view_id=view_id)
    bot.wait(lambda: bot.kit.runtime.stopped == [1])
    refreshed = bot.wait(lambda: "no open lease" in str(bot.slack.home_view(BOB)))
    assert refreshed
    bot.slack.assert_no_problems()


def test_a_released_pending_request_is_marked_withdrawn_for_the_admins(bot: Bot) -> None:
    bot.gpu(BOB, "claim 5d")
    request = request_message(bot)
    bot.gpu(BOB, "release 1")
    updated = bot.wait(lambda: (m := bot.slack.message(ADMIN_CHANNEL, request.ts)).history and m)
    assert "(lease 1) was withdrawn" in updated.all_text
    assert not [b for b in updated.blocks if b["type"] == "actions"], "no live buttons"
    assert status(bot, 1) is LeaseStatus.RELEASED
