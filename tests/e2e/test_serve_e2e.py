"""`gpubot serve` as a real process: Socket Mode to the stand-in, real containers."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import ADMIN_CHANNEL, ALICE, BOB, CAROL, ServedBot
from tests.support import jupyter

pytestmark = [pytest.mark.e2e, pytest.mark.docker]
READY = 120.0


def access(bot: ServedBot, user: str, lease: int) -> tuple[str, str]:
    dm = bot.slack.wait_for(lambda: next((m for m in bot.slack.dms(user)
                                          if f"(lease {lease})" in m.all_text
                                          and "Password" in m.all_text), None),
                            timeout=READY, message=f"no access DM for lease {lease}")
    url = re.search(r"http://127\.0\.0\.1:\d+/lab", dm.text).group(0)
    password = re.search(r"\*Password\*\n`([^`]+)`", dm.all_text).group(1)
    assert password not in dm.text
    return url, password


def containers(docker_client, user: str) -> list:
    return docker_client.containers.list(all=True, filters={"label": f"gpubot.user={user}"},
                                         ignore_removed=True)


def test_claim_login_release(served: ServedBot, docker_client) -> None:
    served.slack.slash_command(BOB, "claim 2h")
    url, password = access(served, BOB, 1)
    base = url.removesuffix("/lab")
    assert jupyter.logs_in(base, password)
    assert not jupyter.logs_in(base, password + "x")
    [container] = containers(docker_client, BOB)
    assert container.name == "gpubot-1" and container.labels["gpubot.lease"] == "1"
    served.slack.slash_command(BOB, "release")
    served.slack.wait_for(lambda: not containers(docker_client, BOB), timeout=30)
    assert (served.workspace_root / BOB).is_dir(), "the workspace stays"
    served.slack.assert_acks_within(3.0)
    served.slack.assert_no_problems()
    assert password not in served.log_text()


def test_approval_paths_and_refusals(served: ServedBot, docker_client) -> None:
    served.slack.slash_command(CAROL, "claim 5d")
    request = served.slack.wait_for(lambda: next(iter(served.slack.messages(ADMIN_CHANNEL)), None))
    served.slack.block_action(BOB, "gpu_approve", "1", message_ts=request.ts, channel=ADMIN_CHANNEL)
    served.slack.wait_for(lambda: [e for e in served.slack.ephemerals(BOB)
                                   if "Only a gpubot admin" in e.all_text])
    served.slack.block_action(ALICE, "gpu_approve", "1", message_ts=request.ts, channel=ADMIN_CHANNEL)
    url, password = access(served, CAROL, 1)
    assert jupyter.logs_in(url.removesuffix("/lab"), password)

    served.slack.slash_command(BOB, "claim 1h 2 gpus")
    second = served.slack.wait_for(lambda: (msgs := served.slack.messages(ADMIN_CHANNEL))[1:] and msgs[1])
    served.slack.block_action(ALICE, "gpu_deny", "2", message_ts=second.ts, channel=ADMIN_CHANNEL)
    served.slack.wait_for(lambda: served.slack.open_views(ALICE))
    served.slack.view_submission(ALICE, values={"gpu_deny_reason": {"gpu_deny_reason": "no"}})
    served.slack.wait_for(lambda: [m for m in served.slack.dms(BOB) if "denied" in m.text])
    assert not containers(docker_client, BOB)
    served.slack.assert_acks_within(3.0)
    served.slack.assert_no_problems()


def test_malformed_input_through_the_real_process(served: ServedBot) -> None:
    texts = ["", "   ", "claim ２４h", "x" * 10_240, "claim 24h <!channel>", "claim -5h",
             "claim 99999w", "release 42", "extend 1h 7", "frob <@U0ALICE001>"]
    for text in texts:
        served.slack.slash_command(BOB, text)
    served.slack.wait_for(lambda: len(served.slack.ephemerals(BOB)) >= len(texts), timeout=20)
    replies = [e.all_text for e in served.slack.ephemerals(BOB)]
    assert not [r for r in replies if "Traceback" in r or "ref `" in r or "<!channel>" in r]
    latencies = [v for v in served.slack.ack_latencies().values() if v is not None]
    print(f"\n[e2e] slowest ack over {len(latencies)} envelopes: {max(latencies) * 1000:.1f} ms")
    served.slack.assert_acks_within(3.0)
    served.slack.assert_no_problems()


def test_http_mode_checks_slack_signatures(slack_standin, docker_client, tmp_path) -> None:
    from tests.e2e.conftest import launch, stop
    from tests.infra.docker_engine import free_port

    port = free_port()
    bot = launch(slack_standin, tmp_path, http_port=port)
    try:
        url = f"http://127.0.0.1:{port}/slack/events"
        answer = slack_standin.http_slash_command(url, BOB, "help")
        assert answer.status == 200 and answer.latency < 3
        bot.slack.wait_for(lambda: [e for e in bot.slack.ephemerals(BOB)
                                    if "/gpu claim 24h" in e.all_text])
        forged = slack_standin.post_signed(url, {"command": "/gpu", "text": "help",
                                                 "user_id": BOB}, secret="not-the-secret")
        assert forged.status == 401
        assert not slack_standin.calls("apps.connections.open")
    finally:
        stop(bot, docker_client)


def test_a_killed_container_is_reported_within_seconds(served: ServedBot, docker_client) -> None:
    import time

    served.slack.slash_command(BOB, "claim 2h")
    access(served, BOB, 1)
    [container] = containers(docker_client, BOB)
    killed = time.monotonic()
    container.kill()
    dm = served.slack.wait_for(lambda: next((m for m in served.slack.dms(BOB)
                                             if "container stopped" in m.text), None), timeout=30)
    elapsed = time.monotonic() - killed
    print(f"\n[e2e] container death DM after {elapsed:.2f}s: {dm.text}")
    assert "exit" in dm.text and elapsed < 10
    served.slack.wait_for(lambda: not containers(docker_client, BOB), timeout=30)
