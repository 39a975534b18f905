"""`/gpu`: ack at once, parse, call a service, answer ephemerally."""

from __future__ import annotations

from typing import Any

from bot.domain.durations import format_duration
from bot.domain.lease import LeaseStatus
from bot.services.facade import UseCases
from handlers import blocks, contention_blocks, env_blocks, usage_blocks
from handlers.context import HandlerContext, quick_command
from handlers.errors import teller
from handlers.grammar import parse
from handlers.keys import handle_key


def register(app: Any, ctx: HandlerContext) -> None:
    @app.command("/gpu")
    def gpu(ack: Any, command: dict[str, Any], respond: Any, client: Any) -> None:
        ack()
        tell = teller(respond, client, command)
        ctx.submit(lambda: handle(ctx.bot, command, respond), tell=tell,
                   quick=quick_command(command.get("text")))


def handle(bot: UseCases, command: dict[str, Any], respond: Any) -> None:
    """The work of one `/gpu` command, without Bolt (the console calls it too):
    ``command`` holds ``user_id``, ``text`` and optionally ``channel_id``; ``respond``
    takes Bolt's keywords (``text``, ``blocks``, ``response_type``)."""
    user = command["user_id"]
    cmd = parse(command.get("text"), default_duration=bot.default_lease,
                max_lease=bot.max_lease)
    now = bot.now()

    def say(message: tuple[str, list[dict[str, Any]]]) -> None:
        respond(text=message[0], blocks=message[1] or None, response_type="ephemeral")

    if cmd.verb == "help":
        say(blocks.help_message(cmd.note))
    elif cmd.verb == "status":
        say(blocks.status_message(bot.gpu_table(), now, waiting=bot.waiting()))
    elif cmd.verb == "mine":
        say(blocks.mine_message(bot.leases_of(user), now, extend_by=bot.extend_by,
                                workspace_bytes=bot.workspace_usage(user)))
    elif cmd.verb == "claim":
        assert cmd.duration is not None
        lease = bot.claims.claim(user_id=user, duration=cmd.duration,
                                      gpu_count=cmd.gpu_count, model=cmd.model,
                                      channel_id=command.get("channel_id"),
                                      environment=cmd.environment)
        if lease.status is LeaseStatus.PENDING_APPROVAL:
            say(blocks.waiting_for_approval(lease))
            return
        if lease.status is LeaseStatus.QUEUED:
            say(contention_blocks.queued_message(lease, bot.queue.place(lease.id),
                                      why=bot.why_waiting(lease)))
            return
        say(blocks.progress_message(
            lease, f"Lease {lease.id} granted for {format_duration(lease.duration)}. "
                   f"I'm starting Jupyter and will DM you the link and password."))
        bot.claims.start(lease.id or 0)
    elif cmd.verb == "release":
        lease = bot.leases.release(user_id=user, lease_id=cmd.lease_id)
        say((blocks.released_text(lease), []))
    elif cmd.verb == "extend":
        assert cmd.duration is not None
        lease = bot.leases.extend(user_id=user, duration=cmd.duration,
                                       lease_id=cmd.lease_id)
        say((blocks.extended_text(lease), []))
    elif cmd.verb == "envs":
        say(env_blocks.environments_message(bot.environments()))
    elif cmd.verb == "queue":
        say(contention_blocks.queue_message(bot.queue.line(), now, bot.queue.engine_line()))
    elif cmd.verb == "leave":
        lease = bot.queue.leave(user_id=user, lease_id=cmd.lease_id)
        say((contention_blocks.left_queue_text(lease), []))
    elif cmd.verb == "usage":
        say(usage_blocks.usage_message(bot.usage.usage(user_id=user)))
    elif cmd.verb == "report":  # NotAllowed for anyone but an admin
        report = bot.usage.post_report(by=user)
        say((usage_blocks.report_posted_text(report), []))
    elif cmd.verb == "key":  # SSH public keys (issue 13.2)
        say(handle_key(bot, user, cmd))
    elif cmd.verb == "password":
        lease = bot.leases.resend_access(user_id=user, lease_id=cmd.lease_id)
        say((f"I sent the link and password for lease {lease.id} by DM.", []))
