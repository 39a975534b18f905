"""Web API methods about identity, conversations and messages:
auth.test, apps.connections.open, chat.postMessage, chat.postEphemeral, chat.update,
chat.delete, conversations.open, users.info."""

from __future__ import annotations

import secrets
from typing import Any

from .blockkit import MESSAGE_TEXT_MAX, validate_blocks
from .errors import SlackError
from .store import ChannelState, Store
from .webapi import Ctx, Handler

TRUNCATED: dict[str, Any] = {"response_metadata": {
    "messages": ["[WARN] Your message was truncated but still posted. "
                 "The `text` field accepts up to 40,000 characters."],
    "warnings": ["message_truncated"]}}


def message_content(args: dict[str, Any], *, truncate: bool
                    ) -> tuple[str, list[dict[str, Any]] | None, bool]:
    """Text, blocks and whether the text was truncated, validated like Slack: no_text,
    markdown_text_conflict, invalid_blocks; text over 40,000 characters is truncated
    (chat.postMessage, chat.update: warning ``message_truncated``) or ``msg_too_long``."""
    text = args.get("text") or ""
    blocks = args.get("blocks")
    markdown = args.get("markdown_text")
    if markdown is not None:
        if text or blocks:
            raise SlackError("markdown_text_conflict")
        text = markdown
    if not text and not blocks and not args.get("attachments"):
        raise SlackError("no_text")
    if blocks is not None:
        problems = validate_blocks(blocks)
        if problems:
            raise SlackError("invalid_blocks", problems)
    truncated = len(text) > MESSAGE_TEXT_MAX
    if truncated:
        if not truncate:
            raise SlackError("msg_too_long")
        text = text[:MESSAGE_TEXT_MAX]
    return text, blocks, truncated


def _postable(store: Store, channel_arg: str) -> ChannelState:
    ch = store.resolve_channel(channel_arg, user_ids_open_dm=True)
    if ch.kind == "channel" and not ch.bot_is_member:
        raise SlackError("channel_not_found" if ch.is_private else "not_in_channel")
    return ch


def auth_test(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    cfg = ctx.store.config
    return {"url": f"https://{cfg.team_domain}.slack.com/", "team": cfg.team_name,
            "user": cfg.bot_name, "team_id": cfg.team_id, "user_id": cfg.bot_user_id,
            "bot_id": cfg.bot_id, "is_enterprise_install": False}


def apps_connections_open(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    ticket = secrets.token_hex(16)
    ctx.store.tickets[ticket] = ctx.store.now()
    ws_base = "ws://" + ctx.base_url.split("://", 1)[1]
    return {"url": f"{ws_base}link/?ticket={ticket}&app_id={ctx.store.config.app_id}"}


def chat_post_message(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    ch = _postable(ctx.store, args["channel"])
    text, blocks, truncated = message_content(args, truncate=True)
    msg = ctx.store.add_message(ch.id, text, blocks or [], "chat.postMessage",
                                args.get("thread_ts"))
    cfg = ctx.store.config
    extra = TRUNCATED if truncated else {}
    if truncated:
        ctx.store.problem(f"chat.postMessage to {ch.id}: message_truncated")
    return {"channel": ch.id, "ts": msg.ts, "message": msg.to_slack(cfg.team_id, cfg.app_id),
            **extra}


def chat_post_ephemeral(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    ch = _postable(store, args["channel"])
    user = args["user"]
    if user not in store.users or store.users[user].deleted or user not in ch.members:
        raise SlackError("user_not_in_channel")
    text, blocks, _ = message_content(args, truncate=False)
    eph = store.add_ephemeral(ch.id, user, text, blocks or [], "chat.postEphemeral")
    return {"message_ts": eph.ts}


def _own_message(store: Store, args: dict[str, Any]) -> Any:
    ch = store.resolve_channel(args["channel"], user_ids_open_dm=False)
    msg = store.messages.get((ch.id, args["ts"]))
    if msg is None or msg.deleted:
        raise SlackError("message_not_found")
    return msg


def chat_update(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    store, cfg = ctx.store, ctx.store.config
    msg = _own_message(store, args)
    if msg.user != cfg.bot_user_id:
        raise SlackError("cant_update_message")
    text, blocks, truncated = message_content(args, truncate=True)
    if truncated:
        store.problem(f"chat.update of {msg.channel}/{msg.ts}: message_truncated")
    msg.history.append({"text": msg.text, "blocks": msg.blocks, "time": store.now()})
    msg.text = text if ("text" in args or "markdown_text" in args) else msg.text
    msg.blocks = blocks if blocks is not None else msg.blocks
    return {"channel": msg.channel, "ts": msg.ts, "text": msg.text,
            "message": msg.to_slack(cfg.team_id, cfg.app_id), **(TRUNCATED if truncated else {})}


def chat_delete(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    msg = _own_message(ctx.store, args)
    if msg.user != ctx.store.config.bot_user_id:
        raise SlackError("cant_delete_message")
    msg.deleted = True
    return {"channel": msg.channel, "ts": msg.ts}


def conversations_open(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    if args.get("channel"):
        ch = store.channels.get(args["channel"])
        if ch is None or ch.kind == "channel":
            raise SlackError("channel_not_found")
        return {"channel": {"id": ch.id}, "no_op": True, "already_open": True}
    users = [u.strip() for u in str(args.get("users") or "").split(",") if u.strip()]
    if not users:
        raise SlackError("users_list_not_supplied")
    if len(users) > 8:
        raise SlackError("too_many_users")
    for uid in users:
        store.user(uid)
    if len(users) == 1:
        existed = store.im_of(users[0]) is not None
        ch = store.open_im(users[0])
    else:
        members = set(users) | {store.config.bot_user_id}
        found = [c for c in store.channels.values() if c.kind == "mpim" and c.members == members]
        existed = bool(found)
        ch = found[0] if found else ChannelState(store.new_id("G"), "mpdm", "mpim", members,
                                                 True, True)
        store.channels[ch.id] = ch
    channel: dict[str, Any] = {"id": ch.id}
    if args.get("return_im"):
        channel.update({"created": int(store.now()), "is_im": ch.kind == "im",
                        "is_mpim": ch.kind == "mpim", "user": ch.im_user, "is_open": True})
    return {"channel": channel, "no_op": existed, "already_open": existed}


def users_info(ctx: Ctx, args: dict[str, Any]) -> dict[str, Any]:
    user = ctx.store.users.get(args["user"])
    if user is None:
        raise SlackError("user_not_found")
    return {"user": user.to_slack(ctx.store.config.team_id)}


HANDLERS: dict[str, Handler] = {
    "auth.test": auth_test,
    "apps.connections.open": apps_connections_open,
    "chat.postMessage": chat_post_message,
    "chat.postEphemeral": chat_post_ephemeral,
    "chat.update": chat_update,
    "chat.delete": chat_delete,
    "conversations.open": conversations_open,
    "users.info": users_info,
}
