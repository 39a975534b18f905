"""The queue through Socket Mode: the answer's place, `/gpu queue`, the Leave button,
and the "your GPU is ready" DM when a GPU frees (issue 12.1)."""

from __future__ import annotations

from tests.slack.conftest import ALICE, BOB, CAROL, Bot

DAVE = "U0DAVE0004"


def holds(bot: Bot, user: str, n: int) -> None:
    for _ in range(n):
        bot.gpu(user, "claim 2h")
    bot.wait(lambda: len([m for m in bot.slack.dms(user) if "Password" in m.all_text]) >= n)


def test_a_full_server_queues_and_hands_the_gpu_to_the_next_in_line(bot: Bot) -> None:
    holds(bot, ALICE, 2)
    holds(bot, BOB, 2)  # all four GPUs held
    bot.gpu(CAROL, "claim 3h")
    answer = bot.wait(lambda: [t for t in bot.ephemeral_texts(CAROL) if "queue" in t])[0]
    assert "#1 in the queue for 1 GPU" in answer and "4 in all: 4 leased" in answer
    bot.gpu(DAVE, "claim 1h")
    assert "#2 in the queue" in bot.wait(lambda: [t for t in bot.ephemeral_texts(DAVE)
                                                  if "queue" in t])[0]
    bot.gpu(BOB, "queue")
    line = bot.wait(lambda: [t for t in bot.ephemeral_texts(BOB) if "waiting" in t])[0]
    assert line.index(f"#1* <@{CAROL}>") < line.index(f"#2* <@{DAVE}>"), line

    bot.gpu(BOB, "release 3")
    ready = bot.wait(lambda: [m for m in bot.slack.dms(CAROL) if "Password" in m.all_text])
    assert "Your GPU is ready" in ready[0].text and "Password" not in ready[0].text
    assert not [m for m in bot.slack.dms(DAVE) if "Password" in m.all_text]

    queued = bot.wait(lambda: [e for e in bot.slack.ephemerals(DAVE) if "queue" in e.all_text])
    bot.slack.block_action(DAVE, "gpu_leave", "6", message_ts=queued[0].ts)
    assert bot.wait(lambda: [t for t in bot.ephemeral_texts(DAVE) if "left the queue" in t])
    bot.gpu(DAVE, "queue")
    assert bot.wait(lambda: [t for t in bot.ephemeral_texts(DAVE) if "Nobody is waiting" in t])
    bot.slack.assert_acks_within(3.0)
    bot.slack.assert_no_problems()


def test_a_request_no_server_could_satisfy_is_refused(bot: Bot) -> None:
    bot.gpu(CAROL, "claim 2h 9 gpus")
    refusal = bot.wait(lambda: bot.ephemeral_texts(CAROL))[-1]
    assert "could never be granted" in refusal and "queue" not in refusal
