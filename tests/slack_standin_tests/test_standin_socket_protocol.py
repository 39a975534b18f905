"""Socket Mode at the wire level (aiohttp client): hello, envelopes, acks, problems."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from slack_sdk import WebClient

from tests.slack_standin import SlackStandIn

BOB = "U0BOB00002"


async def _session(s: SlackStandIn) -> dict[str, Any]:
    url = await asyncio.to_thread(
        lambda: WebClient(base_url=s.api_url).apps_connections_open(app_token=s.app_token)["url"])
    seen: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(url.replace("ticket=", "ticket=forged"))
        async with http.ws_connect(url) as ws:
            seen["hello"] = await ws.receive_json()
            env = await asyncio.to_thread(s.slash_command, BOB, "status", wait=False)
            seen["envelope"] = await ws.receive_json()
            await asyncio.sleep(0.15)  # later than the configured ack limit
            ack = {"envelope_id": env.envelope_id, "payload": {"text": "late but here"}}
            await ws.send_json(ack)
            await ws.send_json(ack)
            await ws.send_str("not json")
            seen["acked"] = await asyncio.to_thread(s.wait_ack, env.envelope_id, 2.0)
            await asyncio.sleep(0.05)
    return seen


def test_wire_protocol_and_recorded_problems() -> None:
    with SlackStandIn(ack_timeout_s=0.1) as s:
        seen = asyncio.run(_session(s))
        assert seen["hello"]["type"] == "hello"
        assert seen["hello"]["connection_info"] == {"app_id": s.config.app_id}
        envelope = seen["envelope"]
        assert envelope["type"] == "slash_commands" and envelope["accepts_response_payload"]
        assert envelope["payload"]["command"] == "/gpu" and envelope["payload"]["user_id"] == BOB
        env = seen["acked"]
        assert env.ack_payload == {"text": "late but here"} and env.latency > 0.1
        assert s.ephemerals(BOB) == []  # Slack ignores the payload of a late ack
        problems = "\n".join(s.problems())
        assert "acked after" in problems and "acked twice" in problems
        assert "non-ack message" in problems
        with pytest.raises(AssertionError):
            s.assert_acks_within(0.1)
        s.assert_acks_within(3.0)
