"""Strictness of the stand-in's Web API: auth, arguments, Block Kit, messages, views."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.slack_standin import SlackStandIn

BOB = "U0BOB00002"
GENERAL = "C0GENERAL1"
HOME = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "h"}}]}


def raw(standin: SlackStandIn, method: str, *, token: str | None = None,
        json_body: dict[str, Any] | None = None, form: dict[str, str] | None = None,
        verb: str = "POST") -> dict[str, Any]:
    """Call the Web API with full control over headers and body encoding."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json; charset=utf-8"
    elif form is not None:
        data = urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(standin.api_url + method, data=data, headers=headers,
                                 method=verb)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return dict(json.loads(resp.read()))


def bot(standin: SlackStandIn, method: str, **body: Any) -> dict[str, Any]:
    """A JSON call with the bot token."""
    return raw(standin, method, token=standin.bot_token, json_body=body)


def error_of(fn: Any, **kwargs: Any) -> str:
    with pytest.raises(SlackApiError) as err:
        fn(**kwargs)
    return str(err.value.response["error"])


@pytest.fixture
def client(slack_standin: SlackStandIn) -> WebClient:
    return WebClient(token=slack_standin.bot_token, base_url=slack_standin.api_url)


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def button(action_id: str, text: Any = "x", **extra: Any) -> dict[str, Any]:
    label = {"type": "plain_text", "text": text} if isinstance(text, str) else text
    return {"type": "button", "action_id": action_id, "text": label, **extra}


def actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "elements": list(elements)}


def test_auth_errors(slack_standin: SlackStandIn) -> None:
    s = slack_standin
    assert raw(s, "auth.test")["error"] == "not_authed"
    assert raw(s, "auth.test", token="xoxb-wrong")["error"] == "invalid_auth"
    assert raw(s, "auth.test", token=s.bot_token)["ok"] is True
    wrong_type = raw(s, "chat.postMessage", token=s.app_token,
                     json_body={"channel": GENERAL, "text": "x"})
    assert wrong_type["error"] == "not_allowed_token_type"
    assert raw(s, "apps.connections.open", token=s.bot_token)["error"] == "not_allowed_token_type"
    get = raw(s, "apps.connections.open", token=s.app_token, verb="GET")
    assert get["error"] == "insecure_request"
    opened = raw(s, "apps.connections.open", form={"token": s.app_token})
    assert opened["url"].startswith(f"ws://127.0.0.1:{s.port}/link/?ticket=")
    # a token inside a JSON body does not count, like Slack
    assert raw(s, "auth.test", json_body={"token": s.bot_token})["error"] == "not_authed"
    assert bot(s, "conversations.history")["error"] == "unknown_method"
    errors = [c.error for c in s.calls("auth.test")]
    assert errors == ["not_authed", "invalid_auth", None, "not_authed"]


def test_required_arguments_and_types(slack_standin: SlackStandIn, client: WebClient) -> None:
    s = slack_standin
    assert bot(s, "chat.postMessage", text="x")["error"] == "channel_not_found"
    assert error_of(client.users_info, user="") == "user_not_found"
    answer = bot(s, "views.publish", view=HOME)
    assert answer["error"] == "invalid_arguments"
    assert answer["response_metadata"]["messages"] == ["[ERROR] missing required field: user_id"]
    no_ts = raw(s, "chat.update", token=s.bot_token, form={"channel": GENERAL})
    assert no_ts["error"] == "message_not_found"
    bad_bool = bot(s, "chat.postMessage", channel=GENERAL, text="x", mrkdwn="maybe")
    assert bad_bool["error"] == "invalid_arguments"
    assert bot(s, "chat.postMessage", channel=42, text="x")["error"] == "invalid_arguments"
    not_json = raw(s, "chat.postMessage", token=s.bot_token,
                   form={"channel": GENERAL, "blocks": "not json"})
    assert not_json["error"] == "invalid_blocks_format"
    form_ok = raw(s, "chat.postMessage", token=s.bot_token,
                  form={"channel": GENERAL, "text": "form ok", "unfurl_links": "false"})
    assert form_ok["ok"] is True
    assert error_of(client.conversations_open, users=[]) == "users_list_not_supplied"
    assert bot(s, "views.open", view="{not json")["error"] == "invalid_arguments"


@pytest.mark.parametrize("blocks", [
    [section("x" * 3001)],
    [section(f"{i}") for i in range(51)],
    [actions({"type": "button", "action_id": "a"})],
    [actions(button("a", "x" * 76))],
    [actions(button("a" * 256))],
    [actions(*[button(f"a{i}") for i in range(26)])],
    [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
    [section("a", block_id="same"), section("b", block_id="same")],
    [section("a", block_id="b" * 256)],
    [actions(button("a", {"type": "mrkdwn", "text": "*b*"}))],
    [{"type": "no_such_block"}],
    [section("")],
    [actions(button("a"), button("a"))],
    [actions(button("a", value="v" * 2001))],
], ids=["section3001", "51blocks", "button-no-text", "button-text76", "action_id256",
        "26elements", "header151", "dup-block_id", "block_id256", "mrkdwn-button", "unknown",
        "empty-text", "dup-action_id", "value2001"])
def test_invalid_blocks(client: WebClient, blocks: list[dict[str, Any]]) -> None:
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel=GENERAL, text="t", blocks=blocks)
    assert err.value.response["error"] == "invalid_blocks"
    assert err.value.response["errors"]


def test_valid_blocks_pass(client: WebClient) -> None:
    select = {"type": "static_select", "action_id": "s",
              "placeholder": {"type": "plain_text", "text": "p"},
              "options": [{"text": {"type": "plain_text", "text": "A"}, "value": "a"}]}
    blocks = [section(f"{i}") for i in range(47)] + [
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "ctx"}]},
        {**section("x" * 3000), "accessory": select},
    ]
    assert client.chat_postMessage(channel=GENERAL, text="t", blocks=blocks)["ok"]
    limit = [actions(*[button(f"a{i}", "x" * 75, style="primary") for i in range(25)])]
    assert client.chat_postMessage(channel=GENERAL, text="t", blocks=limit)["ok"]


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_messages_dms_updates(slack_standin: SlackStandIn, client: WebClient) -> None:
    s = slack_standin
    assert error_of(client.chat_postMessage, channel=GENERAL) == "no_text"
    assert error_of(client.chat_postMessage, channel="C0NOPE", text="x") == "channel_not_found"
    assert error_of(client.chat_postEphemeral, channel=GENERAL, user="U0NOPE",
                    text="x") == "user_not_in_channel"
    assert error_of(client.chat_postEphemeral, channel=GENERAL, user=BOB,
                    text="x" * 40001) == "msg_too_long"
    long = client.chat_postMessage(channel=GENERAL, text="y" * 40001)
    assert long["response_metadata"]["warnings"] == ["message_truncated"]
    assert any("message_truncated" in p for p in s.problems())
    posted = client.chat_postMessage(channel=BOB, text="hello", blocks=[section("*hi*")])
    im = client.conversations_open(users=BOB)["channel"]["id"]
    assert posted["channel"] == im and im.startswith("D") and s.dm_channel(BOB) == im
    assert error_of(client.chat_update, channel=im, ts="1.000001", text="x") == "message_not_found"
    # chat.update needs the DM's id, not the user id
    assert error_of(client.chat_update, channel=BOB, ts=posted["ts"],
                    text="x") == "channel_not_found"
    client.chat_update(channel=im, ts=posted["ts"], text="bye", blocks=[section("*bye*")])
    [dm] = s.dms(BOB)
    assert dm.text == "bye" and dm.history[0]["text"] == "hello" and "*bye*" in dm.all_text
    client.chat_postEphemeral(channel=GENERAL, user=BOB, text="psst")
    assert [e.text for e in s.ephemerals(BOB)] == ["psst"]
    client.chat_delete(channel=im, ts=posted["ts"])
    assert s.dms(BOB) == [] and s.messages(im, include_deleted=True)[0].deleted
    assert s.messages("#general")[0].text == "y" * 40000
    assert client.users_info(user="U0ALICE001")["user"]["is_admin"] is True


MODAL = {"type": "modal", "title": {"type": "plain_text", "text": "T"}, "blocks": [section("b")]}


def test_views(slack_standin: SlackStandIn, client: WebClient) -> None:
    s = slack_standin
    home = client.views_publish(user_id=BOB, view=HOME)["view"]
    assert s.home_view(BOB)["id"] == home["id"]
    assert error_of(client.views_publish, user_id="U0NOPE", view=HOME) == "invalid_arguments"
    assert error_of(client.views_publish, user_id=BOB, view=HOME, hash="stale") == "hash_conflict"
    assert error_of(client.views_publish, user_id=BOB, view=MODAL) == "invalid_arguments"
    assert error_of(client.views_open, trigger_id="1.2.abc", view=MODAL) == "invalid_trigger_id"
    for bad in ({**MODAL, "title": {"type": "plain_text", "text": "x" * 25}},
                {"type": "modal", "blocks": [section("no title")]},
                {**MODAL, "blocks": [section(str(i)) for i in range(101)]}):
        assert error_of(client.views_open, trigger_id="1.2.abc", view=bad) == "invalid_arguments"
    trig = s.store.issue_trigger(BOB)
    opened = client.views_open(trigger_id=trig, view=MODAL)["view"]
    assert error_of(client.views_open, trigger_id=trig, view=MODAL) == "exchanged_trigger_id"
    assert error_of(client.views_update, view_id="VNOPE", view=MODAL) == "not_found"
    client.views_update(view_id=opened["id"], hash=opened["hash"],
                        view={**MODAL, "blocks": [section("updated")]})
    assert s.open_views(BOB)[0]["blocks"][0]["text"]["text"] == "updated"
    for _ in range(2):
        client.views_push(trigger_id=s.store.issue_trigger(BOB), view=MODAL)
    assert error_of(client.views_push, trigger_id=s.store.issue_trigger(BOB),
                    view=MODAL) == "push_limit_reached"
    assert len(s.open_views(BOB)) == 3


def test_response_url_limits(slack_standin: SlackStandIn) -> None:
    s = slack_standin
    url = s.store.issue_response_url(s.base_url, BOB, GENERAL, None)

    def post(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    assert post({"text": "one"}) == (200, {"ok": True})
    assert post({"blocks": [section("x" * 3001)]})[1]["error"] == "invalid_blocks"
    assert post({"response_type": "in_channel", "text": "everyone"})[0] == 200
    assert post({})[1]["error"] == "no_text"
    assert post({"text": "five"})[0] == 200
    assert post({"text": "six"}) == (404, {"ok": False, "error": "used_url"})
    assert [e.text for e in s.ephemerals(BOB)] == ["one", "five"]
    assert [m.text for m in s.messages(GENERAL)] == ["everyone"]
    assert len(s.response_url_posts()) == 6 and any("used" in p for p in s.problems())
    url = s.store.issue_response_url(s.base_url, BOB, GENERAL, None)
    s.advance(30 * 60 + 1)
    assert post({"text": "late"}) == (404, {"ok": False, "error": "expired_url"})


def test_posting_past_the_channel_limit_is_answered_429_with_retry_after() -> None:
    with SlackStandIn(post_limit=(2, 1.0)) as standin:
        client = WebClient(token=standin.bot_token, base_url=standin.api_url)  # no retries
        client.chat_postMessage(channel=BOB, text="one")
        client.chat_postMessage(channel=BOB, text="two")
        client.chat_postMessage(channel=GENERAL, text="another channel has its own limit")
        with pytest.raises(SlackApiError) as refused:
            client.chat_postMessage(channel=BOB, text="three")
        response = refused.value.response
        assert response.status_code == 429 and response["error"] == "ratelimited"
        assert response.headers["Retry-After"] == "1"
        assert [m.text for m in standin.messages(standin.dm_channel(BOB))] == ["one", "two"]
        time.sleep(1.05)
        client.chat_postMessage(channel=BOB, text="three")  # the window has moved on
