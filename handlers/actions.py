"""Buttons (Extend, Release, Approve, Deny) and the Deny-reason modal.

What each click does is a plain function of the use cases (``extend``, ``release``,
``approve``, ``deny_modal_for``, ``deny_submitted``), so the console runs the very same
code when a numbered choice is picked; the listeners add only Bolt's part (ack, the
work pool, where the answer goes, which message a decision replaces).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bot.domain.errors import DomainError
from bot.services.facade import UseCases
from handlers import blocks, contention_blocks, home
from handlers.context import HandlerContext
from handlers.errors import report, teller


# ------------------------------------------------------ the work of each click
def extend(bot: UseCases, user: str, lease_id: int) -> str:
    return blocks.extended_text(bot.leases.extend(user_id=user, duration=bot.extend_by,
                                                  lease_id=lease_id))


def release(bot: UseCases, user: str, lease_id: int) -> str:
    return blocks.released_text(bot.leases.release(user_id=user, lease_id=lease_id))


def leave(bot: UseCases, user: str, lease_id: int) -> str:
    return contention_blocks.left_queue_text(bot.queue.leave(user_id=user, lease_id=lease_id))


def still_using(bot: UseCases, user: str, lease_id: int) -> str:
    return contention_blocks.still_using_text(bot.idle.still_using(user_id=user, lease_id=lease_id))


QUICK_BUTTONS = frozenset({blocks.EXTEND, blocks.STILL_USING})  # no container to stop
LEASE_BUTTONS: dict[str, Callable[[UseCases, str, int], str]] = {
    blocks.EXTEND: extend, blocks.RELEASE: release, blocks.LEAVE: leave,
    blocks.STILL_USING: still_using}  # a holder's buttons: (user, lease) → answer


def approve(bot: UseCases, admin: str, lease_id: int) -> None:
    lease = bot.approvals.approve(lease_id=lease_id, admin_id=admin)
    bot.claims.start(lease.id or 0)


def deny_modal_for(bot: UseCases, admin: str, lease_id: int, *, channel: str | None = None,
                   ts: str | None = None) -> dict[str, Any]:
    """The Deny-reason modal; refused (DomainError) before it opens for a non-admin."""
    bot.require_admin(admin)
    metadata = json.dumps({"lease": lease_id, "channel": channel, "ts": ts})
    return blocks.deny_modal(lease_id, metadata)


def deny_submitted(bot: UseCases, admin: str, view: dict[str, Any]) -> None:
    """The modal came back: deny with its reason."""
    meta = json.loads(view.get("private_metadata") or "{}")
    values = view["state"]["values"][blocks.DENY_REASON][blocks.DENY_REASON]
    bot.approvals.deny(lease_id=int(meta["lease"]), admin_id=admin, reason=values.get("value"))


# ------------------------------------------------------------------ listeners
def _lease_id(body: dict[str, Any]) -> int:
    return int(body["actions"][0]["value"])


def register(app: Any, ctx: HandlerContext) -> None:
    bot = ctx.bot

    @app.action(blocks.OPEN)
    def open_url(ack: Any) -> None:
        ack()  # a URL button: Slack opens the link; Bolt must still ack the click

    for action_id, act in LEASE_BUTTONS.items():
        lease_button(app, ctx, action_id, act)

    @app.action(blocks.APPROVE)
    def approve_clicked(ack: Any, body: dict[str, Any], respond: Any, client: Any) -> None:
        ack()
        admin, tell = body["user"]["id"], teller(respond, client, body)
        lease_id = _lease_id(body)
        _remember(ctx, lease_id, body)
        ctx.submit(lambda: approve(bot, admin, lease_id), tell=tell)

    @app.action(blocks.DENY)
    def deny_clicked(ack: Any, body: dict[str, Any], respond: Any, client: Any) -> None:
        ack()
        message = body.get("container", {})
        try:  # refuse before a modal opens; raising after ack() would confuse Bolt
            view = deny_modal_for(bot, body["user"]["id"], _lease_id(body),
                                  channel=message.get("channel_id"), ts=message.get("message_ts"))
        except DomainError as error:
            report(error, teller(respond, client, body))
            return
        client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(blocks.DENY_MODAL)
    def deny_view(ack: Any, body: dict[str, Any], view: dict[str, Any], client: Any) -> None:
        ack()
        meta = json.loads(view.get("private_metadata") or "{}")
        if meta.get("channel") and meta.get("ts"):
            ctx.notifier.remember_approval_message(meta["lease"], meta["channel"], meta["ts"])
        ctx.submit(lambda: deny_submitted(bot, body["user"]["id"], view),
                   tell=teller(None, client, body))


def lease_button(app: Any, ctx: HandlerContext, action_id: str,
                 act: Callable[[UseCases, str, int], str]) -> None:
    """A holder's button on one lease (DM, reminder, App Home): ack, act, answer, and
    refresh the App Home when the click came from there."""

    @app.action(action_id)
    def clicked(ack: Any, body: dict[str, Any], respond: Any, client: Any) -> None:
        ack()
        tell = teller(respond, client, body)

        def work() -> None:
            tell(act(ctx.bot, body["user"]["id"], _lease_id(body)))
            home.refresh_if_home(ctx, client, body)

        ctx.submit(work, tell=tell, quick=action_id in QUICK_BUTTONS)


def _remember(ctx: HandlerContext, lease_id: int, body: dict[str, Any]) -> None:
    """Let the decision replace the very message the admin clicked."""
    container = body.get("container") or {}
    if container.get("channel_id") and container.get("message_ts"):
        ctx.notifier.remember_approval_message(lease_id, container["channel_id"],
                                               container["message_ts"])
