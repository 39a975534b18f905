"""The terminal as Slack: who sits at it, every message posted to it, and printing that
does not tear the line being typed.

Messages arrive from any thread (the scheduler's reminders, a claim finishing in the
work pool) while the main thread waits in ``input()``; each one clears the prompt line,
prints, and draws the prompt and the half-typed line again.

In Slack a DM is seen only by its user. Here everyone shares one screen, so a message
carrying a secret (the access DM's password) addressed to someone other than the
current user is printed with the secret masked, and shown in full once that user is
the current one (``:user``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from handlers.console.render import Blocks, Rendered, render

try:
    import readline
except ImportError:  # pragma: no cover - not on Linux; the console still works
    readline = None  # type: ignore[assignment]

MASK = "••••••••"
KEEP = 500  # messages remembered for picks by number


@dataclass(frozen=True)
class Audience:
    """Who a message is for, as Slack would deliver it."""

    user: str | None = None  # a DM, or an ephemeral note, to this user
    channel: str | None = None  # a post in this channel (the admin channel)
    ephemeral: bool = False

    def heading(self, current: str) -> str:
        if self.channel:
            return f"#{self.channel} (admin channel)"
        you = " (you)" if self.user == current else ""
        return f"{'only ' if self.ephemeral else 'DM '}to {self.user}{you}"


@dataclass
class Posted:
    number: int
    audience: Audience
    rendered: Rendered
    secret: str | None = None
    key: Any = None  # e.g. ("approval", lease id): the message a later one replaces
    open: bool = True  # its choices may still be picked
    masked: bool = False  # printed with its secret hidden

    def visible_to(self, user: str) -> bool:
        return self.audience.channel is not None or self.audience.user == user


class Screen:
    def __init__(self, out: TextIO, *, user: str) -> None:
        self.out = out
        self._user = user
        self._lock = threading.RLock()
        self._posted: list[Posted] = []
        self._count = 0
        self.prompt = ""
        self.reading = False  # the main thread sits in input()

    # ------------------------------------------------------------- printing
    def show(self, text: str) -> None:
        """Print ``text`` above the prompt, from any thread."""
        with self._lock:
            if self.reading:
                typed = readline.get_line_buffer() if readline else ""
                self.out.write(f"\r\x1b[2K{text}\n{self.prompt}{typed}")
            else:
                self.out.write(f"{text}\n")
            self.out.flush()

    def post(self, audience: Audience, message: tuple[str, Blocks], *,
             secret: str | None = None, key: Any = None) -> Posted:
        """Show one message the bot sends (its blocks rendered) and remember it."""
        with self._lock:
            self._count += 1
            posted = Posted(self._count, audience, render(*message), secret, key)
            self._posted = [*self._posted[-KEEP:], posted]
            self._print(posted)
            return posted

    def _print(self, posted: Posted, *, again: bool = False) -> None:
        text = posted.rendered.text
        posted.masked = bool(posted.secret) and posted.audience.user != self._user
        if posted.masked and posted.secret:
            text = text.replace(posted.secret, MASK)
            text += (f"\n  (the password is for {posted.audience.user} only: "
                     f"`:user {posted.audience.user}` shows it)")
        tag = f" · message {posted.number}" if posted.rendered.choices else ""
        head = f"── {posted.audience.heading(self._user)}{tag}{' (again)' if again else ''} "
        hint = ("\n  (type a number to pick; "
                f"{posted.number}.N picks from this message later)"
                if posted.rendered.choices and posted.open else "")
        self.show(f"{head.ljust(60, '─')}\n{text}{hint}")

    # --------------------------------------------------------------- people
    @property
    def user(self) -> str:
        return self._user

    def switch(self, user: str) -> int:
        """Sit ``user`` at the terminal; messages of theirs shown masked are shown in
        full now. Returns how many."""
        with self._lock:
            self._user = user
            hidden = [p for p in self._posted if p.masked and p.audience.user == user]
            for posted in hidden:
                self._print(posted, again=True)
            return len(hidden)

    # ---------------------------------------------------------------- picks
    def retire(self, key: Any) -> bool:
        """The message under ``key`` was replaced (Slack updates it): no more picks.
        False when there was none open."""
        with self._lock:
            found = [p for p in self._posted if p.key == key and p.open]
            for posted in found:
                posted.open = False
            return bool(found)

    def pickable(self, number: int | None = None) -> Posted | None:
        """Message ``number``, else the newest open one with choices the current user
        can see."""
        with self._lock:
            if number is not None:
                return next((p for p in self._posted if p.number == number), None)
            return next((p for p in reversed(self._posted) if p.open and p.rendered.choices
                         and p.visible_to(self._user)), None)

    def ask(self, question: str, read: Callable[[str], str]) -> str:
        """Read one answer in the main thread, keeping the prompt for redraws."""
        with self._lock:
            self.prompt, self.reading = question, True
        try:
            return read(question)
        finally:
            with self._lock:
                self.reading = False
