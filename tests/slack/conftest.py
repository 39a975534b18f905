"""The real handlers and services, in process, against the Slack stand-in over Socket
Mode; containers and GPUs are the hand-written fakes (the e2e suite uses real ones)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from bot.settings import Settings
from handlers.app import register_all
from handlers.context import HandlerContext
from handlers.notifier import SlackNotifier, web_client
from tests.fakes.gpus import FakeInventory
from tests.fakes.services import Harness, build_harness, make_policy
from tests.slack_standin import SlackStandIn

ALICE, BOB, CAROL = "U0ALICE001", "U0BOB00002", "U0CAROL003"  # Alice is the admin
ADMIN_CHANNEL = "C0GPUADMIN"


@dataclass
class Bot:
    slack: SlackStandIn
    kit: Harness
    ctx: HandlerContext

    def gpu(self, user: str, text: str) -> Any:
        env = self.slack.slash_command(user, text)
        return env

    def ephemeral_texts(self, user: str) -> list[str]:
        return [e.all_text for e in self.slack.ephemerals(user)]

    def wait(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        return self.slack.wait_for(predicate, timeout=timeout)


@pytest.fixture
def db(sqlite_url: str):
    """Handlers are database-agnostic; the services' tests cover PostgreSQL."""
    from bot.db import migrate
    from bot.db.engine import Database

    migrate.upgrade(sqlite_url)
    database = Database(sqlite_url)
    yield database
    database.dispose()


@pytest.fixture
def bot(db, slack_standin: SlackStandIn, bolt_socket_app) -> Bot:
    client = web_client(slack_standin.bot_token, slack_standin.api_url)
    inventory = FakeInventory()
    notifier = SlackNotifier(client, admin_channel=ADMIN_CHANNEL, extend_by=timedelta(hours=24),
                             gpus=inventory.list_gpus)
    settings = Settings(GPUBOT_ADMINS=ALICE, GPUBOT_ADMIN_CHANNEL=ADMIN_CHANNEL)
    kit = build_harness(db, notifier=notifier, inventory=inventory, settings=settings,
                        policy=make_policy(admins=frozenset({ALICE})))
    ctx = HandlerContext(kit.gpubot.use_cases, notifier)
    bolt_socket_app(lambda app: register_all(app, ctx))
    return Bot(slack_standin, kit, ctx)
