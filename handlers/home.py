"""App Home: your leases with their buttons, how many GPUs are free, the GPU table."""

from __future__ import annotations

from typing import Any

from handlers import blocks
from handlers.context import HandlerContext
from handlers.errors import teller


def register(app: Any, ctx: HandlerContext) -> None:
    @app.event("app_home_opened")
    def opened(event: dict[str, Any], client: Any) -> None:
        if event.get("tab", "home") != "home":
            return
        user = event["user"]
        ctx.submit(lambda: publish(ctx, client, user), tell=teller(None, client, {"user_id": user}),
                   quick=True)


def publish(ctx: HandlerContext, client: Any, user: str) -> None:
    bot = ctx.bot
    gpus = bot.gpu_table()
    mine = bot.leases_of(user, gpus=[row.gpu for row in gpus])
    client.views_publish(user_id=user, view=blocks.home_view(
        mine, gpus, bot.now(), extend_by=bot.extend_by))


def refresh_if_home(ctx: HandlerContext, client: Any, body: dict[str, Any]) -> None:
    if (body.get("view") or {}).get("type") == "home":
        publish(ctx, client, body["user"]["id"])
