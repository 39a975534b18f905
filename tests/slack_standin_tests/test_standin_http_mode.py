"""HTTP mode: requests signed like Slack reach a real bolt App, which verifies them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from slack_bolt import App, BoltRequest
from slack_sdk import WebClient

from tests.slack_standin import SlackStandIn, signature

BOB = "U0BOB00002"


@pytest.fixture
def http_app(slack_standin: SlackStandIn) -> Iterator[str]:
    app = App(signing_secret=slack_standin.signing_secret,
              client=WebClient(token=slack_standin.bot_token, base_url=slack_standin.api_url))

    @app.command("/gpu")
    def gpu(ack: Any, command: dict[str, Any], client: Any) -> None:
        ack(f"got {command['text']}")
        client.chat_postMessage(channel=command["user_id"], text="DM from HTTP mode",
                                blocks=[{"type": "actions", "elements": [{
                                    "type": "button", "action_id": "ok", "value": "v1",
                                    "text": {"type": "plain_text", "text": "OK"}}]}])

    @app.action("ok")
    def ok(ack: Any, body: dict[str, Any], respond: Any) -> None:
        ack()
        respond(text=f"clicked {body['actions'][0]['value']}", replace_original=True)

    @app.event("app_home_opened")
    def home(event: dict[str, Any]) -> None:
        pass

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            headers = {k.lower(): [v] for k, v in self.headers.items()}
            resp = app.dispatch(BoltRequest(body=body, headers=headers))
            data = (resp.body or "").encode()
            self.send_response(resp.status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/slack/events"
    server.shutdown()
    server.server_close()


def test_signature_matches_slack_example() -> None:
    # Slack's documented example (api.slack.com/authentication/verifying-requests-from-slack)
    body = ("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
            "&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
            "&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
            "commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    assert signature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body.encode()) == \
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_http_mode_command_click_and_bad_signatures(slack_standin: SlackStandIn,
                                                    http_app: str) -> None:
    s = slack_standin
    resp = s.http_slash_command(http_app, BOB, "status")
    assert resp.status == 200 and resp.body == "got status"
    dm = s.wait_for(lambda: s.dms(BOB))[0]
    assert s.http_block_action(http_app, BOB, "ok", message_ts=dm.ts, channel=BOB).status == 200
    s.wait_for(lambda: s.dms(BOB)[0].text == "clicked v1")
    assert s.http_event(http_app, {"type": "app_home_opened", "user": BOB, "tab": "home",
                                   "channel": s.dm_channel(BOB), "event_ts": "1.0"}).status == 200
    assert s.post_signed(http_app, {"command": "/gpu"}, secret="wrong").status == 401
    assert s.post_signed(http_app, {"command": "/gpu"}, timestamp=1_000_000_000).status == 401
