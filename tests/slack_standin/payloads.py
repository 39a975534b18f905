"""Builders of the payloads Slack sends to apps, shaped exactly like Slack's:
slash_commands, block_actions (from a message, an ephemeral message or a view),
view_submission and events_api ``event_callback`` wrappers (app_home_opened).

Builders look things up in the store, so a test can only click a button that is really
in the message or view, and can only submit a modal that is really open; every payload
gets a fresh trigger_id and, where Slack gives one, a response_url.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterator
from typing import Any

from .errors import StandInUsageError
from .records import Ephemeral, Message, ViewRecord
from .store import Store


def user_obj(store: Store, user_id: str) -> dict[str, Any]:
    """The ``user`` object of interactive payloads."""
    user = store.users.get(user_id)
    if user is None:
        raise StandInUsageError(f"unknown user {user_id}")
    return {"id": user.id, "username": user.name, "name": user.name,
            "team_id": store.config.team_id}


def _team(store: Store) -> dict[str, Any]:
    return {"id": store.config.team_id, "domain": store.config.team_domain}


def _channel_name(store: Store, channel_id: str) -> str:
    ch = store.channels.get(channel_id)
    if ch is None:
        raise StandInUsageError(f"unknown channel {channel_id}")
    return {"im": "directmessage", "mpim": "mpdm"}.get(ch.kind, ch.name)


def slash_command(store: Store, base: str, *, user_id: str, text: str, channel_id: str,
                  command: str) -> dict[str, Any]:
    """A slash_commands payload (all values strings, as Slack sends them)."""
    cfg = store.config
    user_obj(store, user_id)
    return {
        "token": cfg.verification_token, "team_id": cfg.team_id, "team_domain": cfg.team_domain,
        "channel_id": channel_id, "channel_name": _channel_name(store, channel_id),
        "user_id": user_id, "user_name": store.users[user_id].name, "command": command,
        "text": text, "api_app_id": cfg.app_id, "is_enterprise_install": "false",
        "response_url": store.issue_response_url(base, user_id, channel_id, None),
        "trigger_id": store.issue_trigger(user_id),
    }


def _elements(blocks: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for block in blocks:
        bid = str(block.get("block_id") or "")
        for el in block.get("elements") or []:
            if isinstance(el, dict) and "action_id" in el:
                yield bid, el
        for key in ("accessory", "element"):
            el = block.get(key)
            if isinstance(el, dict) and "action_id" in el:
                yield bid, el


def _options(el: dict[str, Any]) -> list[dict[str, Any]]:
    opts = list(el.get("options") or [])
    for group in el.get("option_groups") or []:
        opts += group.get("options") or []
    return opts


def _option(el: dict[str, Any], value: Any) -> dict[str, Any]:
    for opt in _options(el):
        if opt.get("value") == value:
            return copy.deepcopy(opt)
    raise StandInUsageError(f"{el.get('action_id')}: no option with value {value!r}")


def element_state(el: dict[str, Any], value: Any) -> dict[str, Any]:
    """The state/action value of an element as Slack reports it for a chosen ``value``."""
    kind = el.get("type")
    out: dict[str, Any] = {"type": kind}
    if kind in ("static_select", "overflow", "radio_buttons", "external_select"):
        out["selected_option"] = _option(el, value) if kind != "external_select" else value
    elif kind in ("checkboxes", "multi_static_select"):
        out["selected_options"] = [_option(el, v) for v in value]
    elif kind == "users_select":
        out["selected_user"] = value
    elif kind == "multi_users_select":
        out["selected_users"] = list(value)
    elif kind == "conversations_select":
        out["selected_conversation"] = value
    elif kind == "channels_select":
        out["selected_channel"] = value
    elif kind == "datepicker":
        out["selected_date"] = value
    elif kind == "timepicker":
        out["selected_time"] = value
    else:  # button, plain_text_input, number_input, email/url inputs
        if value is not None:
            out["value"] = value
    return out


def find_element(blocks: list[dict[str, Any]], action_id: str, value: Any,
                 block_id: str | None) -> tuple[str, dict[str, Any]]:
    """The one element a user can act on; buttons sharing an action_id are told apart by value."""
    found = [(b, e) for b, e in _elements(blocks) if e.get("action_id") == action_id
             and (block_id is None or b == block_id)]
    if value is not None:  # a button is identified by its value; selects take any value
        found = [(b, e) for b, e in found if e.get("type") != "button" or e.get("value") == value]
    if not found:
        raise StandInUsageError(f"no element with action_id {action_id!r} (value {value!r})")
    if len(found) > 1:
        raise StandInUsageError(f"action_id {action_id!r} is ambiguous; pass value or block_id")
    return found[0]


def block_actions(store: Store, base: str, *, user_id: str, action_id: str, value: Any,
                  target: Message | Ephemeral | ViewRecord, block_id: str | None) -> dict[str, Any]:
    """A block_actions payload for a click/selection on ``target``."""
    cfg = store.config
    blocks = target.view.get("blocks", []) if isinstance(target, ViewRecord) else target.blocks
    bid, el = find_element(blocks, action_id, value, block_id)
    action = {"action_id": action_id, "block_id": bid, **element_state(el, value),
              "action_ts": f"{store.now():.6f}"}
    if el.get("type") == "button":
        action.update(text=copy.deepcopy(el.get("text")), value=el.get("value"))
        action = {k: v for k, v in action.items() if v is not None}
        if el.get("style"):
            action["style"] = el["style"]
    payload: dict[str, Any] = {
        "type": "block_actions", "user": user_obj(store, user_id), "api_app_id": cfg.app_id,
        "token": cfg.verification_token, "trigger_id": store.issue_trigger(user_id),
        "team": _team(store), "enterprise": None, "is_enterprise_install": False,
    }
    if isinstance(target, ViewRecord):
        payload["container"] = {"type": "view", "view_id": target.id}
        payload["view"] = copy.deepcopy(target.view)
    else:
        ephemeral = isinstance(target, Ephemeral)
        payload["container"] = {"type": "message", "message_ts": target.ts,
                                "channel_id": target.channel, "is_ephemeral": ephemeral}
        payload["channel"] = {"id": target.channel, "name": _channel_name(store, target.channel)}
        if isinstance(target, Message):
            payload["message"] = target.to_slack(cfg.team_id, cfg.app_id)
        payload["state"] = {"values": {}}
        payload["response_url"] = store.issue_response_url(
            base, user_id, target.channel, ("ephemeral" if ephemeral else "message", target.ts))
    payload["actions"] = [action]
    return payload


def view_state(view: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``state.values`` for a submission: ``{block_id: {action_id: value}}``, where a value
    is the plain user choice (converted per element type) or a ready Slack state dict."""
    inputs = {b.get("block_id"): b for b in view.get("blocks", []) if b.get("type") == "input"}
    state: dict[str, Any] = {}
    for bid, per_action in values.items():
        block = inputs.get(bid)
        if block is None:
            raise StandInUsageError(f"view has no input block {bid!r}")
        el = block.get("element") or {}
        for aid, val in per_action.items():
            if el.get("action_id") != aid:
                raise StandInUsageError(f"input block {bid!r} has no element {aid!r}")
            done = isinstance(val, dict) and "type" in val
            state.setdefault(bid, {})[aid] = val if done else element_state(el, val)
    for bid, block in inputs.items():
        if not block.get("optional") and bid not in state:
            raise StandInUsageError(f"required input {bid!r} is empty; Slack would not submit")
    return state


def view_submission(store: Store, *, user_id: str, rec: ViewRecord,
                    values: dict[str, Any]) -> dict[str, Any]:
    """A view_submission payload for the open modal ``rec``."""
    cfg = store.config
    view = copy.deepcopy(rec.view)
    view["state"] = {"values": view_state(view, values)}
    rec.view["state"] = copy.deepcopy(view["state"])
    return {
        "type": "view_submission", "team": _team(store), "user": user_obj(store, user_id),
        "api_app_id": cfg.app_id, "token": cfg.verification_token,
        "trigger_id": store.issue_trigger(user_id), "view": view, "response_urls": [],
        "is_enterprise_install": False, "enterprise": None,
    }


def event_callback(store: Store, event: dict[str, Any]) -> dict[str, Any]:
    """The events_api ``event_callback`` wrapper around ``event``."""
    cfg = store.config
    return {
        "token": cfg.verification_token, "team_id": cfg.team_id, "context_team_id": cfg.team_id,
        "context_enterprise_id": None, "api_app_id": cfg.app_id, "event": event,
        "type": "event_callback", "event_id": "Ev" + secrets.token_hex(5).upper(),
        "event_time": int(store.now()),
        "authorizations": [{"enterprise_id": None, "team_id": cfg.team_id,
                            "user_id": cfg.bot_user_id, "is_bot": True,
                            "is_enterprise_install": False}],
        "is_ext_shared_channel": False, "event_context": "4-" + secrets.token_urlsafe(24),
    }


def app_home_opened(store: Store, user_id: str) -> dict[str, Any]:
    """An app_home_opened event (with the published home view, if any)."""
    user_obj(store, user_id)
    event: dict[str, Any] = {"type": "app_home_opened", "user": user_id,
                             "channel": store.open_im(user_id).id, "tab": "home",
                             "event_ts": f"{store.now():.6f}"}
    home = store.views.get(store.home_views.get(user_id, ""))
    if home is not None:
        event["view"] = copy.deepcopy(home.view)
    return event
