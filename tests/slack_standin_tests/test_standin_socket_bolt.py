"""A real slack_bolt App over Socket Mode (slack_sdk's built-in client) against the stand-in."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

from tests.slack_standin import AckTimeout, SlackStandIn, StandInUsageError

BOB = "U0BOB00002"
ALICE = "U0ALICE001"

MODAL = {
    "type": "modal", "callback_id": "claim_modal",
    "title": {"type": "plain_text", "text": "Claim a GPU"},
    "submit": {"type": "plain_text", "text": "Claim"},
    "blocks": [{"type": "input", "block_id": "duration",
                "label": {"type": "plain_text", "text": "Duration"},
                "element": {"type": "plain_text_input", "action_id": "value"}}],
}


def _register(app: Any) -> None:
    @app.command("/gpu")
    def gpu(ack: Any, command: dict[str, Any], respond: Any, client: Any) -> None:
        words = command["text"].split()
        if words[:1] == ["ack-text"]:
            ack("quick answer")
            return
        ack()
        if words[:1] == ["eph"]:
            respond(text="choose", blocks=[{"type": "actions", "elements": [{
                "type": "button", "action_id": "eph_ok", "value": "yes",
                "text": {"type": "plain_text", "text": "OK"}}]}])
            return
        if words[:1] == ["modal"]:
            client.views_open(trigger_id=command["trigger_id"], view=MODAL)
            if "twice" in words:
                try:
                    client.views_open(trigger_id=command["trigger_id"], view=MODAL)
                except SlackApiError as err:
                    respond(f"second open: {err.response['error']}")
            return
        respond(f"you said {command['text']}")
        client.chat_postMessage(
            channel=command["user_id"], text="Lease ready",
            blocks=[{"type": "section", "block_id": "info",
                     "text": {"type": "mrkdwn", "text": "Your lease *L1* is ready"}},
                    {"type": "actions", "block_id": "buttons", "elements": [
                        {"type": "button", "action_id": "extend", "value": "L1",
                         "text": {"type": "plain_text", "text": "Extend"}},
                        {"type": "button", "action_id": "release", "value": "L1", "style": "danger",
                         "text": {"type": "plain_text", "text": "Release"}}]}])

    @app.action("release")
    def release(ack: Any, body: dict[str, Any], respond: Any) -> None:
        ack()
        assert body["container"]["type"] == "message"
        respond(replace_original=True, text=f"Released {body['actions'][0]['value']}")

    @app.action("eph_ok")
    def eph_ok(ack: Any, body: dict[str, Any], respond: Any) -> None:
        ack()
        assert body["container"]["is_ephemeral"] is True and "message" not in body
        respond(replace_original=True, text="confirmed")

    @app.action("home_refresh")
    def refresh(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        assert body["container"] == {"type": "view", "view_id": body["view"]["id"]}
        assert "response_url" not in body
        client.views_publish(user_id=body["user"]["id"], view=_home("Refreshed"))

    @app.view("claim_modal")
    def submit(ack: Any, view: dict[str, Any]) -> None:
        value = view["state"]["values"]["duration"]["value"]["value"]
        if value == "forever":
            ack(response_action="errors", errors={"duration": "too long"})
        elif value == "confirm":
            ack(response_action="update", view={**MODAL, "title": {
                "type": "plain_text", "text": "Confirmed"}})
        else:
            ack()

    @app.event("app_home_opened")
    def home(event: dict[str, Any], client: Any) -> None:
        client.views_publish(user_id=event["user"], view=_home("Your leases"))


def _home(text: str) -> dict[str, Any]:
    return {"type": "home", "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "elements": [{"type": "button", "action_id": "home_refresh",
                                          "text": {"type": "plain_text", "text": "Refresh"}}]}]}


@pytest.fixture
def slack(slack_standin: SlackStandIn, bolt_socket_app: Any) -> SlackStandIn:
    bolt_socket_app(_register)
    return slack_standin


def test_slash_command_ack_respond_and_dm(slack: SlackStandIn) -> None:
    env = slack.slash_command(BOB, "status")
    assert env.acked and env.ack_payload is None and env.latency is not None
    assert set(env.payload) >= {"token", "team_id", "channel_id", "user_id", "command", "text",
                                "response_url", "trigger_id", "api_app_id"}
    eph = slack.wait_for(lambda: slack.ephemerals(BOB))
    assert eph[0].text == "you said status" and eph[0].source == "response_url"
    dm = slack.wait_for(lambda: slack.dms(BOB))[0]
    assert dm.channel.startswith("D") and "*L1* is ready" in dm.all_text
    slack.assert_acks_within(3.0)
    assert set(slack.ack_latencies()) == {env.envelope_id}


def test_button_click_replaces_original_via_response_url(slack: SlackStandIn) -> None:
    slack.slash_command(BOB, "claim")
    dm = slack.wait_for(lambda: slack.dms(BOB))[0]
    with pytest.raises(StandInUsageError):
        slack.block_action(BOB, "no-such-button", message_ts=dm.ts, channel=BOB)
    env = slack.block_action(BOB, "release", "L1", message_ts=dm.ts, channel=BOB)
    assert env.payload["actions"][0]["value"] == "L1"
    updated = slack.wait_for(lambda: [m for m in slack.dms(BOB) if m.history])
    assert updated[0].text == "Released L1" and updated[0].blocks == []
    slack.assert_no_problems()


def test_modal_trigger_single_use_and_view_errors(slack: SlackStandIn) -> None:
    slack.slash_command(ALICE, "modal twice")
    slack.wait_for(lambda: slack.ephemerals(ALICE))
    assert slack.ephemerals(ALICE)[0].text == "second open: exchanged_trigger_id"
    [view] = slack.open_views(ALICE)
    env = slack.view_submission(ALICE, view["id"], {"duration": {"value": "forever"}})
    assert env.ack_payload == {"response_action": "errors", "errors": {"duration": "too long"}}
    assert slack.open_views(ALICE)
    slack.view_submission(ALICE, values={"duration": {"value": "confirm"}})
    [updated] = slack.open_views(ALICE)
    assert updated["id"] == view["id"] and updated["title"]["text"] == "Confirmed"
    with pytest.raises(StandInUsageError):  # a required input left empty cannot be submitted
        slack.view_submission(ALICE, values={})
    slack.view_submission(ALICE, values={"duration": {"value": "24h"}})
    assert slack.open_views(ALICE) == []
    assert [c.error for c in slack.api_errors()] == ["exchanged_trigger_id"]
    slack.assert_no_problems(allow_api_errors=True)


def test_expired_trigger_id(slack: SlackStandIn) -> None:
    from slack_sdk import WebClient

    env = slack.slash_command(BOB, "claim")
    slack.advance(3.5)
    client = WebClient(token=slack.bot_token, base_url=slack.api_url)
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id=env.payload["trigger_id"], view=MODAL)
    assert err.value.response["error"] == "expired_trigger_id"


def test_ack_payload_and_home_tab(slack: SlackStandIn) -> None:
    env = slack.slash_command(BOB, "ack-text")
    assert env.ack_payload == {"text": "quick answer"}
    assert slack.ephemerals(BOB)[0].source == "ack"
    slack.app_home_opened(BOB)
    home = slack.wait_for(lambda: slack.home_view(BOB))
    assert home["type"] == "home" and home["blocks"][0]["text"]["text"] == "Your leases"
    slack.block_action(BOB, "home_refresh", view_id=home["id"])
    slack.wait_for(lambda: slack.home_view(BOB)["blocks"][0]["text"]["text"] == "Refreshed")


def test_ephemeral_button_in_dm_channel(slack: SlackStandIn) -> None:
    env = slack.slash_command(BOB, "eph", channel_id=slack.dm_channel(BOB))
    assert env.payload["channel_name"] == "directmessage"
    eph = slack.wait_for(lambda: slack.ephemerals(BOB))[0]
    with pytest.raises(StandInUsageError):  # only Bob sees (and can click) his ephemeral
        slack.block_action(ALICE, "eph_ok", message_ts=eph.ts)
    slack.block_action(BOB, "eph_ok", message_ts=eph.ts)
    slack.wait_for(lambda: slack.ephemerals(BOB)[0].text == "confirmed")
    slack.assert_no_problems()


def test_unhandled_envelope_times_out(slack: SlackStandIn) -> None:
    with pytest.raises(AckTimeout):
        slack.event({"type": "reaction_added", "user": BOB}, timeout=0.5)
    with pytest.raises(AssertionError):
        slack.assert_acks_within(3.0)


def test_reconnect_on_disconnect(slack: SlackStandIn) -> None:
    before = len(slack.calls("apps.connections.open"))
    assert slack.request_reconnect(close_after=0.2) == 1
    slack.wait_for(lambda: len(slack.calls("apps.connections.open")) > before, timeout=10)
    slack.wait_for(lambda: slack.server.hub.connections_total >= 2, timeout=10)
    assert slack.slash_command(BOB, "status").acked
