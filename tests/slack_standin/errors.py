"""Exceptions of the Slack stand-in."""

from __future__ import annotations

from typing import Any


class SlackError(Exception):
    """A Web API error answer: ``{"ok": false, "error": code, **extra}``."""

    def __init__(self, code: str, messages: list[str] | None = None, **extra: Any) -> None:
        super().__init__(code if not messages else f"{code}: {'; '.join(messages)}")
        self.code = code
        self.extra: dict[str, Any] = dict(extra)
        if messages:
            self.extra.setdefault("response_metadata",
                                  {"messages": [f"[ERROR] {m}" for m in messages]})
            if code in ("invalid_blocks", "invalid_arguments"):
                self.extra.setdefault("errors", list(messages))

    def body(self) -> dict[str, Any]:
        """The JSON body Slack would answer with."""
        return {"ok": False, "error": self.code, **self.extra}


class AckTimeout(AssertionError):
    """The app did not acknowledge a Socket Mode envelope in time."""


class NotConnected(AssertionError):
    """No Socket Mode connection was open when an envelope had to be sent."""


class StandInUsageError(AssertionError):
    """A test asked the stand-in for something that cannot happen in Slack
    (e.g. clicking a button that is not in the message)."""
