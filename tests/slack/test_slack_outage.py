"""Slack down while a lease starts (issue 11.6): the start does not depend on Slack.

The real notifier and Web API client talk to a Slack stand-in that is stopped (its port
refuses connections) and later started again on the same port; containers are the fake
runtime, the graph and the outbox are real.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest

from bot.db.repo import LeaseRepo
from bot.domain.errors import MessageDelayed
from bot.domain.lease import Lease, LeaseStatus
from handlers.notifier import SlackNotifier, web_client
from tests.fakes.containers import FakeContainerRuntime
from tests.fakes.gpus import FakeInventory
from tests.fakes.services import build_harness
from tests.slack_standin import SlackStandIn

BOB = "U0BOB00002"
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def passwords(standin: SlackStandIn) -> list[str]:
    return [m.all_text for m in standin.dms(BOB) if "Password" in m.all_text]


def test_a_claim_starts_while_slack_is_down_and_the_access_dm_follows_once_it_is_back(
        db) -> None:
    port = free_port()
    slack = SlackStandIn(port=port).start()
    client = web_client(slack.bot_token, slack.api_url)
    inventory = FakeInventory()
    notifier = SlackNotifier(client, admin_channel=None, extend_by=timedelta(hours=24),
                             gpus=inventory.list_gpus)
    # pull_missing: the runtime reports pull progress through on_progress, as Docker does
    runtime = FakeContainerRuntime(images=(), pull_missing=True)
    kit = build_harness(db, notifier=notifier, inventory=inventory, runtime=runtime)
    slack.stop()  # the outage: connections to SLACK_API_URL are refused from now on

    lease = kit.claims.claim(user_id=BOB, duration=timedelta(hours=3))
    started = kit.claims.start(lease.id or 0)

    assert started.status is LeaseStatus.ACTIVE, started.failure_reason
    assert len(runtime.started) == 1 and any("Pulling" in p for p in runtime.progress)
    assert kit.gpubot.outbox.pending() == 1, "the access DM is owed, not acknowledged"

    back = SlackStandIn(port=port).start()  # Slack is back, at the same URL
    try:
        kit.reconciler.run()
        assert passwords(back) == [], "not before effect_retry_after"
        kit.clock.advance(kit.res.config.effect_retry_after + timedelta(seconds=1))
        kit.reconciler.run()
        assert len(passwords(back)) == 1
        assert kit.gpubot.outbox.pending() == 0
        with kit.res.db.transaction() as session:
            assert LeaseRepo(session).get(lease.id or 0).status is LeaseStatus.ACTIVE
        kit.reconciler.run()
        assert len(passwords(back)) == 1, "sent once"
    finally:
        back.stop()


def test_owed_messages_raise_and_progress_never_does_when_slack_is_unreachable() -> None:
    slack = SlackStandIn().start()
    slack.stop()
    notifier = SlackNotifier(web_client(slack.bot_token, slack.api_url), admin_channel=None,
                             extend_by=timedelta(hours=24), gpus=list)
    lease = Lease(user_id=BOB, duration=timedelta(hours=1), created_at=NOW, id=7,
                  status=LeaseStatus.ACTIVE)
    notifier.progress(lease, "Creating the Jupyter container")  # returns, never raises
    with pytest.raises(MessageDelayed, match="cannot be reached"):
        notifier.reminder(lease, timedelta(minutes=10))
    with pytest.raises(MessageDelayed):
        notifier.claim_failed(lease, "Docker could not start the Jupyter container.")
