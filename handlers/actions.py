"""Buttons (Extend, Release, Approve, Deny) and the Deny-reason modal."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bot.domain.errors import DomainError
from bot.domain.lease import Lease
from handlers import blocks, home
from handlers.context import HandlerContext
from handlers.errors import report, teller


def _lease_id(body: dict[str, Any]) -> int:
    return int(body["actions"][0]["value"])


def register(app: Any, ctx: HandlerContext) -> None:
    bot = ctx.bot

    @app.action(blocks.OPEN)
    def open_url(ack: Any) -> None:
        ack()  # a URL button: Slack opens the link; Bolt must still ack the click

    lease_button(app, ctx, blocks.EXTEND, blocks.extended_text,
                 lambda user, lease_id: bot.leases.extend(
                     user_id=user, duration=bot.extend_by, lease_id=lease_id))
    lease_button(app, ctx, blocks.RELEASE, blocks.released_text,
                 lambda user, lease_id: bot.leases.release(user_id=user, lease_id=lease_id))

    @app.action(blocks.APPROVE)
    def approve(ack: Any, body: dict[str, Any], respond: Any, client: Any) -> None:
        ack()
        admin, tell = body["user"]["id"], teller(respond, client, body)
        lease_id = _lease_id(body)
        _remember(ctx, lease_id, body)

        def work() -> None:
            lease = bot.approvals.approve(lease_id=lease_id, admin_id=admin)
            bot.claims.start(lease.id or 0)

        ctx.submit(work, tell=tell)

    @app.action(blocks.DENY)
    def deny(ack: Any, body: dict[str, Any], respond: Any, client: Any) -> None:
        ack()
        admin = body["user"]["id"]
        try:  # refuse before a modal opens; raising after ack() would confuse Bolt
            bot.require_admin(admin)
        except DomainError as error:
            report(error, teller(respond, client, body))
            return
        message = body.get("container", {})
        metadata = json.dumps({"lease": _lease_id(body), "channel": message.get("channel_id"),
                               "ts": message.get("message_ts")})
        client.views_open(trigger_id=body["trigger_id"],
                          view=blocks.deny_modal(_lease_id(body), metadata))

    @app.view(blocks.DENY_MODAL)
    def deny_submitted(ack: Any, body: dict[str, Any], view: dict[str, Any], client: Any) -> None:
        ack()
        admin = body["user"]["id"]
        meta = json.loads(view.get("private_metadata") or "{}")
        values = view["state"]["values"][blocks.DENY_REASON][blocks.DENY_REASON]
        if meta.get("channel") and meta.get("ts"):
            ctx.notifier.remember_approval_message(meta["lease"], meta["channel"], meta["ts"])
        ctx.submit(lambda: bot.approvals.deny(lease_id=int(meta["lease"]), admin_id=admin,
                                                reason=values.get("value")),
                   tell=teller(None, client, body))


def lease_button(app: Any, ctx: HandlerContext, action_id: str, answer: Callable[[Lease], str],
                 act: Callable[[str, int], Lease]) -> None:
    """A holder's button on one lease (DM, reminder, App Home): ack, act, answer, and
    refresh the App Home when the click came from there."""

    @app.action(action_id)
    def clicked(ack: Any, body: dict[str, Any], respond: Any, client: Any) -> None:
        ack()
        tell = teller(respond, client, body)

        def work() -> None:
            tell(answer(act(body["user"]["id"], _lease_id(body))))
            home.refresh_if_home(ctx, client, body)

        ctx.submit(work, tell=tell)


def _remember(ctx: HandlerContext, lease_id: int, body: dict[str, Any]) -> None:
    """Let the decision replace the very message the admin clicked."""
    container = body.get("container") or {}
    if container.get("channel_id") and container.get("message_ts"):
        ctx.notifier.remember_approval_message(lease_id, container["channel_id"],
                                               container["message_ts"])
