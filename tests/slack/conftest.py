"""The real handlers and services, in process, against the Slack stand-in over Socket
Mode; containers and GPUs are the hand-written fakes (the e2e suite uses real ones)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from bot.adapters.slack import SlackNotifier, web_client
from bot.main import Services
from bot.services.views import gpu_label
from bot.settings import Settings
from handlers.app import register_all
from handlers.context import HandlerContext
from tests.fakes.services import Kit, build, make_policy
from tests.slack_standin import SlackStandIn

ALICE, BOB, CAROL = "U0ALICE001", "U0BOB00002", "U0CAROL003"  # Alice is the admin
ADMIN_CHANNEL = "C0GPUADMIN"


@dataclass
class Bot:
    slack: SlackStandIn
    kit: Kit
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
    holder: dict[str, Kit] = {}

    def describe(lease: Any) -> str:
        gpus = {g.uuid: g for g in holder["kit"].inventory.list_gpus()}
        return ", ".join(gpu_label(u, gpus) for u in lease.gpu_uuids)

    notifier = SlackNotifier(client, admin_channel=ADMIN_CHANNEL, extend_by=timedelta(hours=24),
                             describe_gpus=describe)
    kit = build(db, notifier=notifier, policy=make_policy(admins=frozenset({ALICE})))
    holder["kit"] = kit
    settings = Settings(GPUBOT_ADMINS=ALICE, GPUBOT_ADMIN_CHANNEL=ADMIN_CHANNEL)
    services = Services(settings=settings, deps=kit.deps, claims=kit.claims, manage=kit.manage)
    ctx = HandlerContext(services, notifier)
    bolt_socket_app(lambda app: register_all(app, ctx))
    return Bot(slack_standin, kit, ctx)
