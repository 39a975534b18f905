"""`/gpu` through Socket Mode: acks, the access DM, help, status, mine, malformed input."""

from __future__ import annotations

import pytest

from bot.db.repo import LeaseRepo
from bot.domain.lease import LeaseStatus
from bot.security import verify_jupyter_password
from tests.slack.conftest import ALICE, BOB, CAROL, Bot


def access_dm(bot: Bot, user: str):
    return bot.wait(lambda: next((m for m in bot.slack.dms(user) if "Password" in m.all_text), None))


def test_claim_sends_the_access_dm_with_the_password_only_in_blocks(bot: Bot) -> None:
    env = bot.gpu(BOB, "claim 24h")
    dm = access_dm(bot, BOB)
    spec = bot.kit.runtime.started[0]
    url = "http://gpu.lab.example:8800/lab"
    password = next(f["text"].split("`")[1] for b in dm.blocks if b["type"] == "section"
                    for f in b.get("fields", []) if f["text"].startswith("*Password*"))
    assert verify_jupyter_password(spec.password_hash, password)
    assert url in dm.text and password not in dm.text
    assert url in dm.all_text
    buttons = [e for b in dm.blocks if b["type"] == "actions" for e in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["Open Jupyter", "Extend 1d", "Release"]
    assert env.latency is not None and env.latency < 3
    # the password appears nowhere else: no channel, no ephemeral, no other DM's text
    others = [m.all_text for m in bot.slack.messages() if m.ts != dm.ts]
    others += bot.ephemeral_texts(BOB)
    assert not [t for t in others if password in t]
    granted = bot.ephemeral_texts(BOB)
    assert any("Lease 1 granted" in t for t in granted)
    progress = bot.wait(lambda: [m for m in bot.slack.dms(BOB) if "Ready" in m.all_text])
    assert progress and progress[0].history, "progress was one message, updated in place"
    bot.slack.assert_no_problems()


def test_password_resend_and_release_button(bot: Bot) -> None:
    bot.gpu(BOB, "claim 2h")
    first = access_dm(bot, BOB)
    bot.gpu(BOB, "password")
    bot.wait(lambda: len([m for m in bot.slack.dms(BOB) if "Password" in m.all_text]) == 2)
    bot.slack.block_action(BOB, "gpu_release", "1", message_ts=first.ts, channel=BOB)
    bot.wait(lambda: bot.kit.runtime.stopped == [1])
    bot.wait(lambda: any("released" in t for t in bot.ephemeral_texts(BOB)))
    bot.slack.assert_no_problems()


@pytest.mark.parametrize("text", ["", "help", "   ", "frobnicate", "HELP"])
def test_help(bot: Bot, text: str) -> None:
    bot.gpu(CAROL, text)
    texts = bot.wait(lambda: bot.ephemeral_texts(CAROL))
    assert "/gpu claim 24h" in texts[-1]


def test_status_and_mine(bot: Bot) -> None:
    bot.gpu(BOB, "claim 24h")
    access_dm(bot, BOB)
    bot.gpu(CAROL, "status")
    status = bot.wait(lambda: [t for t in bot.ephemeral_texts(CAROL) if "GPUs free" in t])
    assert "3 of 4 GPUs free" in status[0] and f"<@{BOB}>" in status[0]
    assert "NVIDIA H100" in status[0] and "util 0%" in status[0]
    bot.kit.inventory.set(3, processes_known=False)
    bot.gpu(CAROL, "status")
    unknown = bot.wait(lambda: [t for t in bot.ephemeral_texts(CAROL) if "processes unknown" in t])
    assert unknown[0].count("processes unknown") == 1
    bot.gpu(BOB, "mine")
    mine = bot.wait(lambda: [t for t in bot.ephemeral_texts(BOB) if "*Lease 1*" in t and "left" in t])
    assert "GPU 0 (NVIDIA H100 80GB HBM3)" in mine[0] and "1d left" in mine[0]


MALFORMED = [
    "claim 0h", "claim -5h", "claim banana", "claim 24", "claim 99999w", "claim 9d",
    "claim ２４h", "claim 24h <!channel>", "<@U0ALICE001> claim", "claim 24h; rm -rf /",
    "claim " + "9" * 10_000, "x" * 10_240, "release 999", "release abc", "extend",
    "extend 1h 1", "password 1", "release 1", "claim 1h 99 gpus", "💥 claim 1h",
    "claim 1h\n<!here>", "extend -1h", "claim 1h *bold* _it_",
]


def test_malformed_input_changes_nothing(bot: Bot) -> None:
    bot.gpu(ALICE, "claim 1h")  # lease 1 belongs to Alice; others must not touch it
    access_dm(bot, ALICE)
    for text in MALFORMED:
        before = len(bot.slack.ephemerals(BOB))
        env = bot.gpu(BOB, text)
        assert env.latency is not None and env.latency < 3, text
        reply = bot.wait(lambda: bot.ephemeral_texts(BOB)[before:] or None)[-1]
        assert "Traceback" not in reply and "ref `" not in reply, (text, reply)
        assert "<!channel>" not in reply and "<!here>" not in reply, (text, reply)
        assert "<@U0ALICE001>" not in reply, (text, reply)
    with bot.kit.res.db.transaction() as s:
        leases = LeaseRepo(s).recent(limit=50)
    assert [(lease.id, lease.user_id, lease.status) for lease in leases] == \
        [(1, ALICE, LeaseStatus.ACTIVE)]
    assert bot.kit.runtime.stopped == []
    bot.slack.assert_acks_within(3.0)
    bot.slack.assert_no_problems()


def test_unexpected_error_shows_only_a_reference(bot: Bot, monkeypatch, caplog) -> None:
    def broken() -> list:
        raise RuntimeError("NVML exploded with secret detail")

    monkeypatch.setattr(bot.kit.inventory, "list_gpus", broken)
    bot.gpu(CAROL, "status")
    reply = bot.wait(lambda: bot.ephemeral_texts(CAROL))[-1]
    assert "ref `" in reply and "NVML exploded" not in reply and "Traceback" not in reply
    ref = reply.split("ref `")[1].split("`")[0]
    assert any(ref in r.getMessage() for r in caplog.records)


def test_mine_shows_the_workspace_size_and_status_the_queue(bot: Bot) -> None:
    bot.kit.runtime.workspace_bytes[BOB] = 3 * 1024**3
    bot.gpu(BOB, "mine")
    assert bot.wait(lambda: [t for t in bot.ephemeral_texts(BOB) if "3.0 GiB" in t])
    for user in (ALICE, ALICE, BOB, BOB):
        bot.gpu(user, "claim 1h")
    bot.wait(lambda: len(bot.kit.runtime.started) == 4)
    bot.gpu(CAROL, "claim 1h")
    bot.wait(lambda: [t for t in bot.ephemeral_texts(CAROL) if "#1 in the queue" in t])
    bot.gpu(CAROL, "status")
    assert bot.wait(lambda: [t for t in bot.ephemeral_texts(CAROL)
                             if "1 waiting in the queue" in t])
    bot.gpu(CAROL, "mine")
    assert bot.wait(lambda: [t for t in bot.ephemeral_texts(CAROL) if "#1 in the queue" in t
                             and "Lease 5" in t])
