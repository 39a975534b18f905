"""The queue through the real `gpubot serve` (issue 12.1): one synthetic GPU, real
containers. A full server queues; a release hands the GPU to the next in line; killed
right after that grant committed, the restarted bot starts it exactly once."""

from __future__ import annotations

import signal
import time

import pytest

from tests.e2e.conftest import ALICE, BOB, CAROL, ServedBot, launch, stop
from tests.e2e.test_serve_e2e import access, containers
from tests.support import jupyter

pytestmark = [pytest.mark.e2e, pytest.mark.docker]
ONE_GPU = {"GPUBOT_FAKE_GPUS": "1"}


def queued_answer(bot: ServedBot, user: str) -> str:
    return bot.slack.wait_for(lambda: next((e.all_text for e in bot.slack.ephemerals(user)
                                            if "in the queue" in e.all_text), None),
                              timeout=30, message=f"no queue answer for {user}")


def test_a_release_hands_the_gpu_to_the_next_in_line(slack_standin, docker_client,
                                                     tmp_path) -> None:
    bot = launch(slack_standin, tmp_path, extra=ONE_GPU)
    try:
        slack_standin.slash_command(BOB, "claim 2h")
        access(bot, BOB, 1)
        slack_standin.slash_command(CAROL, "claim 1h")
        assert "#1 in the queue for 1 GPU" in queued_answer(bot, CAROL)
        slack_standin.slash_command(ALICE, "claim 1h")
        assert "#2 in the queue" in queued_answer(bot, ALICE)
        slack_standin.slash_command(BOB, "release")
        url, password = access(bot, CAROL, 2)
        assert jupyter.logs_in(url.removesuffix("/lab"), password)
        assert [c.labels["gpubot.lease"] for c in containers(docker_client, CAROL)] == ["2"]
        ready = [m for m in slack_standin.dms(CAROL) if "Password" in m.all_text]
        assert len(ready) == 1 and "Your GPU is ready" in ready[0].text
        assert not [m for m in slack_standin.dms(ALICE) if "Password" in m.all_text]
    finally:
        stop(bot, docker_client)


def test_killed_right_after_the_hand_off_the_next_person_gets_the_gpu_once(
        slack_standin, docker_client, tmp_path) -> None:
    bot = launch(slack_standin, tmp_path, extra={**ONE_GPU, "GPUBOT_CRASHPOINT": "start.after_commit",
                                                 "GPUBOT_EFFECT_RETRY_AFTER": "5s"})
    try:
        slack_standin.slash_command(BOB, "claim 2h")
        access(bot, BOB, 1)
        slack_standin.slash_command(CAROL, "claim 1h")
        queued_answer(bot, CAROL)
        slack_standin.slash_command(BOB, "release")
        assert bot.process.wait(timeout=60) == -signal.SIGKILL, bot.log_text()
    finally:
        if bot.process.poll() is None:
            bot.process.kill()
    restarted = launch(slack_standin, tmp_path, low=bot.ports[0],
                       extra={**ONE_GPU, "GPUBOT_EFFECT_RETRY_AFTER": "5s"})
    try:
        url, password = access(restarted, CAROL, 2)
        assert jupyter.logs_in(url.removesuffix("/lab"), password)
        time.sleep(8)  # a second start or DM would come within a retry or two
        assert len([m for m in slack_standin.dms(CAROL) if "Password" in m.all_text]) == 1
        assert [c.labels["gpubot.lease"] for c in containers(docker_client, CAROL)] == ["2"]
        assert not [c for c in containers(docker_client, BOB) if c.status == "running"]
    finally:
        stop(restarted, docker_client)
