"""The response_url endpoint: ``POST /response/<team>/<n>/<secret>``.

Like Slack: JSON body; at most ``response_url_max_uses`` (5) posts within
``response_url_ttl_s`` (30 min); ``response_type`` ephemeral (default) or in_channel;
``replace_original`` / ``delete_original`` act on the message the interaction came from;
blocks validated like chat.postMessage; text over 40,000 characters is truncated.
Answers ``{"ok": true}``, or ``{"ok": false, "error": ...}`` with 400/404.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .errors import SlackError
from .methods_chat import message_content
from .records import Ephemeral, Message, ResponseUrl
from .store import Store


def _fail(status: int, code: str, detail: list[str] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error": code}
    if detail:
        body["response_metadata"] = {"messages": [f"[ERROR] {d}" for d in detail]}
    return web.json_response(body, status=status)


def _origin(store: Store, ru: ResponseUrl) -> Message | Ephemeral | None:
    if ru.origin is None:
        return None
    kind, ts = ru.origin
    if kind == "message":
        msg = store.messages.get((ru.channel, ts))
        return msg if msg is not None and not msg.deleted else None
    return store.find_ephemeral(ts)


def apply_response(store: Store, ru: ResponseUrl, body: dict[str, Any], source: str) -> None:
    """Carry out one response_url body (also used for slash-command ack payloads)."""
    original = _origin(store, ru)
    if body.get("delete_original"):
        if original is not None:
            original.deleted = True
        return
    text, blocks, truncated = message_content(body, truncate=True)
    if truncated:
        store.problem(f"{source} for {ru.user}: message_truncated")
    if body.get("replace_original") and original is not None:
        original.history.append({"text": original.text, "blocks": original.blocks,
                                 "time": store.now()})
        original.text, original.blocks = text, blocks or []
        return
    if body.get("response_type") == "in_channel":
        store.add_message(ru.channel, text, blocks or [], source)
    else:
        store.add_ephemeral(ru.channel, ru.user, text, blocks or [], source)


def make_response_url_handler(store: Store) -> Callable[[web.Request], Any]:
    """The aiohttp handler for ``/response/{rid}``."""

    async def handle(request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        raw = await request.text()
        with store.lock:
            ru = store.response_urls.get(rid)
            if ru is None:
                return _fail(404, "no_service")
            entry: dict[str, Any] = {"time": store.now(), "raw": raw}
            ru.posts.append(entry)
            if store.now() - ru.issued_at > store.config.response_url_ttl_s:
                entry["error"] = "expired_url"
                return _fail(404, "expired_url")
            if len(ru.posts) > store.config.response_url_max_uses:
                entry["error"] = "used_url"
                store.problem(f"response_url of {ru.user} used more than "
                              f"{store.config.response_url_max_uses} times")
                return _fail(404, "used_url")
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("not an object")
            except ValueError:
                entry["error"] = "invalid_payload"
                return _fail(400, "invalid_payload")
            entry["body"] = body
            try:
                apply_response(store, ru, body, "response_url")
            except SlackError as err:
                entry["error"] = err.code
                return _fail(400, err.code, err.extra.get("errors"))
            return web.json_response({"ok": True})

    return handle
