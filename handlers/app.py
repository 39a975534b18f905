"""Registers every feature module's listeners on a Bolt app."""

from __future__ import annotations

from typing import Any

from handlers import actions, commands, errors, home
from handlers.context import HandlerContext


def register_all(app: Any, ctx: HandlerContext) -> None:
    errors.register(app)
    commands.register(app, ctx)
    actions.register(app, ctx)
    home.register(app, ctx)
