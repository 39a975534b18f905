"""One way errors reach people: a DomainError's own sentence, ephemerally; anything
else is logged with a reference and the user sees only that reference. A traceback
never reaches Slack."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from bot.domain.errors import DomainError
from bot.domain.lease import ACTORS

log = logging.getLogger("gpubot.errors")


def report(error: BaseException, tell: Callable[[str], Any]) -> None:
    if isinstance(error, DomainError):
        message = error.render(mention)
    else:
        ref = uuid.uuid4().hex[:8]
        log.error("unexpected error [ref %s]", ref, exc_info=error)
        message = (f"Sorry, something went wrong on my side (ref `{ref}`). An admin can find "
                   f"the details in the bot's log.")
    try:
        tell(message)
    except Exception:  # noqa: BLE001 - nothing more we can do for this user
        log.exception("could not tell the user about an error")


def mention(actor: str) -> str:
    """How an actor appears in Slack text: the system's own name, or a user mention."""
    return actor if actor in ACTORS else f"<@{actor}>"


def register(app: Any) -> None:
    @app.error
    def on_error(error: Exception, body: dict[str, Any], respond: Any, client: Any) -> None:
        report(error, teller(respond, client, body))


def teller(respond: Any, client: Any, body: dict[str, Any]) -> Callable[[str], Any]:
    """Ephemeral through the response_url when there is one; else (App Home) a DM."""
    user = (body.get("user") or {}).get("id") or body.get("user_id")

    def tell(text: str) -> None:
        if respond is not None and getattr(respond, "response_url", None):
            respond(text=text, response_type="ephemeral", replace_original=False)
        elif user:
            client.chat_postMessage(channel=user, text=text)

    return tell
