"""HTTP mode on waitress (issue 11.4): a stalled client does not delay Slack, and a
captured signed request replayed inside Slack's 5-minute window is refused. Real
sockets on 127.0.0.1, a real Bolt app, requests signed the way Slack signs them."""

from __future__ import annotations

import socket
import time
import urllib.parse
from collections.abc import Iterator

import pytest
from slack_bolt import App
from slack_sdk import WebClient

from bot.adapters.slack_http import ReplayGuard, SlackHttpServer
from tests.slack_standin import SlackStandIn
from tests.slack_standin.signing import FORM, post_signed, signature

SECRET = "test-signing-secret-0123456789abcdef"


def slash_body(text: str) -> bytes:
    return urllib.parse.urlencode({
        "token": "legacy", "team_id": "T0STANDIN1", "user_id": "U0ALICE001",
        "command": "/gpu", "text": text, "channel_id": "C0GENERAL1",
        "response_url": "http://127.0.0.1:9/hooks", "trigger_id": "1.2.3"}).encode()


@pytest.fixture
def served(slack_standin: SlackStandIn) -> Iterator[tuple[str, list[str]]]:
    """A Bolt app in HTTP mode; its Web API calls (auth.test) go to the stand-in."""
    seen: list[str] = []
    client = WebClient(token=slack_standin.bot_token, base_url=slack_standin.api_url)
    app = App(client=client, signing_secret=SECRET)

    @app.command("/gpu")
    def gpu(ack, command) -> None:  # noqa: ANN001
        ack()
        seen.append(command["text"])

    server = SlackHttpServer(app, signing_secret=SECRET, address="127.0.0.1", port=0).start()
    host, port = server.address
    try:
        yield f"http://{host}:{port}/slack/events", seen
    finally:
        server.stop()


def test_a_slow_loris_does_not_delay_a_signed_request(served) -> None:
    url, seen = served
    port = int(url.split(":")[2].split("/")[0])
    loris = []
    for _ in range(3):  # half a request each, then silence
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
                     b"X-Slack-Request-Timestamp: 1")
        loris.append(sock)
    try:
        time.sleep(0.2)
        for i in range(5):
            answer = post_signed(url, slash_body(f"status {i}"), secret=SECRET, timeout=5)
            assert answer.status == 200 and answer.latency < 1.0, answer
        assert seen == [f"status {i}" for i in range(5)]
    finally:
        for sock in loris:
            sock.close()


def test_a_replayed_signed_request_is_refused(served) -> None:
    url, seen = served
    body, ts = slash_body("claim 24h"), str(int(time.time()))
    headers = {"X-Slack-Signature": signature(SECRET, ts, body)}
    first = post_signed(url, body, secret=SECRET, timestamp=ts, timeout=5)
    replay = post_signed(url, body, secret=SECRET, timestamp=ts, headers=headers, timeout=5)
    assert first.status == 200 and replay.status in (401, 403)
    assert seen == ["claim 24h"]
    # a request signed with another key is still Bolt's to refuse, and is not remembered
    forged = post_signed(url, slash_body("release"), secret="not-the-secret", timeout=5)
    assert forged.status == 401 and seen == ["claim 24h"]
    assert post_signed(url, slash_body("mine"), secret=SECRET, timeout=5).status == 200


def test_the_replay_cache_forgets_after_the_window_and_stays_bounded() -> None:
    now = [1_000_000.0]
    guard = ReplayGuard(lambda e, s: [], signing_secret=SECRET, max_entries=3,
                        clock=lambda: now[0])
    assert guard.first_time("v0=a", 1_000_000) and not guard.first_time("v0=a", 1_000_000)
    now[0] += 302  # past the window: Bolt refuses the timestamp itself from here on
    assert guard.first_time("v0=a", 1_000_000)
    for sig in ("v0=b", "v0=c", "v0=d", "v0=e"):
        assert guard.first_time(sig, int(now[0]))
    assert len(guard._seen) <= 3


def test_a_malformed_timestamp_is_a_401_not_a_500(served) -> None:
    url, _ = served
    answer = post_signed(url, slash_body("status"), secret=SECRET, timeout=5,
                         headers={"X-Slack-Request-Timestamp": "soon",
                                  "Content-Type": FORM})
    assert answer.status == 401
