"""`/gpu envs`, `/gpu claim … env <name>` and the HTTPS access DM, through Socket Mode
against the Slack stand-in (fake containers, a fake proxy)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain.environments import Environment
from handlers.app import register_all
from handlers.context import HandlerContext
from handlers.notifier import SlackNotifier, web_client
from tests.fakes.gpus import FakeInventory
from tests.fakes.images import FakeImages
from tests.fakes.proxy import FakeProxy
from tests.fakes.services import build_harness, make_policy
from tests.slack.conftest import ADMIN_CHANNEL, ALICE, BOB, Bot
from tests.slack_standin import SlackStandIn

ENVS = (Environment("default", "gpubot-jupyter:test"), Environment("conda", "lab/conda:1"),
        Environment("cuda13", "lab/cuda13:1"))


@pytest.fixture
def bot(db, slack_standin: SlackStandIn, bolt_socket_app) -> Bot:  # type: ignore[no-untyped-def]
    client = web_client(slack_standin.bot_token, slack_standin.api_url)
    inventory = FakeInventory()
    notifier = SlackNotifier(client, admin_channel=ADMIN_CHANNEL, extend_by=timedelta(hours=24),
                             gpus=inventory.list_gpus)
    kit = build_harness(db, notifier=notifier, inventory=inventory, proxy=FakeProxy(),
                        policy=make_policy(admins=frozenset({ALICE})), environments=ENVS,
                        proxy_domain="gpu.lab.test")
    object.__setattr__(kit.res, "images", FakeImages(
        {"gpubot-jupyter:test": "none", "lab/conda:1": "12.4", "lab/cuda13:1": "13.0"}))
    ctx = HandlerContext(kit.gpubot.use_cases, notifier)
    bolt_socket_app(lambda app: register_all(app, ctx))
    return Bot(slack_standin, kit, ctx)


def test_envs_lists_each_environment_its_cuda_and_whether_this_server_runs_it(bot: Bot) -> None:
    bot.gpu(BOB, "envs")
    text = bot.wait(lambda: next((t for t in bot.ephemeral_texts(BOB) if "cuda13" in t), None))
    lines = {line.split("*")[1]: line for line in text.splitlines() if line.count("*") >= 2
             and "`" in line}
    assert "(default)" in lines["default"] and "CPU only" in lines["default"]
    assert ":white_check_mark:" in lines["conda"] and "CUDA 12.4" in lines["conda"]
    assert ":x:" in lines["cuda13"] and "needs CUDA 13.0" in lines["cuda13"]
    bot.slack.assert_no_problems()


def test_claim_with_env_starts_that_image_behind_an_https_url(bot: Bot) -> None:
    bot.gpu(BOB, "claim 2h env conda")
    dm = bot.wait(lambda: next((m for m in bot.slack.dms(BOB) if "Password" in m.all_text),
                               None))
    assert bot.kit.runtime.started[-1].image == "lab/conda:1"
    label = bot.kit.gpubot.use_cases.leases_of(BOB)[0].lease.route_label
    assert f"https://{label}.gpu.lab.test/lab" in dm.text
    bot.slack.assert_no_problems()


def test_an_unknown_environment_is_refused_with_the_names(bot: Bot) -> None:
    bot.gpu(BOB, "claim 2h env tensorflow")
    text = bot.wait(lambda: next((t for t in bot.ephemeral_texts(BOB) if "tensorflow" in t),
                                 None))
    assert "`default`" in text and "`conda`" in text and "`cuda13`" in text
    assert bot.kit.runtime.started == []
    bot.slack.assert_no_problems()
