"""The console's listeners: a line typed is a `/gpu` command from the current user, a
number picks a button, ``:``-lines steer the console itself.

Commands and picks run the Slack side's own functions (``handlers.commands.handle``,
``handlers.actions``) in a pool of our own, as the Slack listeners do after their ack,
so the prompt is back at once and a claim that waits for Jupyter blocks nobody.
Questions (a button's confirm dialog, a modal's fields) are asked in the main thread.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from bot.domain.errors import DomainError
from bot.services.facade import UseCases
from handlers import actions, blocks, commands
from handlers.console.render import Choice, confirm_question, modal_fields, plain
from handlers.console.screen import Audience, Posted, Screen, readline
from handlers.errors import report
from handlers.grammar import Verb

log = logging.getLogger(__name__)
PICK = re.compile(r"(?:([0-9]{1,6})\.)?([0-9]{1,3})")
USER_ID = re.compile(r"[A-Z0-9]{1,32}")  # a Slack user id; also a workspace folder name
HELP = """Console commands:
  help, claim 1h, mine, status, …  a /gpu command from the current user (/gpu is optional)
  1, 2, …                         pick that choice of the newest message with choices
  4.2                             pick choice 2 of message 4
  :user U0BOB                     act as another user (their DMs then show in full)
  :user                           who you are, and who else is here
  :help                           this help
  :quit, or Ctrl-D                leave: the scheduler stops, leases keep running"""


class Console:
    def __init__(self, bot: UseCases, screen: Screen, *, users: Sequence[str],
                 history: Path | None = None, read: Callable[[str], str] = input) -> None:
        self.bot = bot
        self.screen = screen
        self.users = list(dict.fromkeys(users or [screen.user]))
        self.history = history
        self.read = read
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gpubot-console")
        self.pending: set[Future[Any]] = set()
        # Piped input: wait (a while) for each answer, so the transcript reads in order. A
        # terminal gets the prompt back at once: readline must own the keyboard, or a
        # Ctrl-D typed meanwhile is lost; answers then print above the prompt.
        self.settle = 0.0 if sys.stdin.isatty() else 2.0

    # ------------------------------------------------------------------ loop
    def loop(self, banner: Sequence[str] = ()) -> None:
        """Read lines until :quit or Ctrl-D; then wait for the work in progress."""
        self._readline()
        for line in banner:
            self.screen.show(line)
        try:
            while True:
                try:
                    line = self.screen.ask(self._prompt(), self.read)
                except EOFError:
                    self.screen.show("")
                    break
                except KeyboardInterrupt:
                    self.screen.show("^C  (:quit or Ctrl-D leaves)")
                    continue
                if not self.handle(line):
                    break
        finally:
            if readline and self.history:
                try:
                    readline.write_history_file(self.history)
                except OSError as exc:
                    log.warning("could not save the console history: %s", exc)
            self.close()

    def close(self) -> None:
        busy = [f for f in self.pending if not f.done()]
        if busy:
            self.screen.show(f"Waiting for {len(busy)} request(s) in progress "
                             f"(Ctrl-C leaves at once)…")
        try:
            self.pool.shutdown(wait=True)
        except KeyboardInterrupt:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def handle(self, line: str) -> bool:
        """One line typed; False when the console should end."""
        line = line.strip()
        if not line:
            return True
        if line.startswith(":"):
            return self._meta(line)
        pick = PICK.fullmatch(line)
        if pick:
            self.pick(int(pick.group(2)), int(pick.group(1)) if pick.group(1) else None)
            return True
        if line.lower() == "/gpu" or line.lower().startswith("/gpu "):
            line = line[4:]
        self.command(line.strip())
        return True

    # -------------------------------------------------------------- commands
    def command(self, text: str) -> Future[Any]:
        user = self.screen.user
        respond = self._respond(user)
        return self._submit(lambda: commands.handle(self.bot, {"user_id": user, "text": text},
                                                    respond), respond)

    def pick(self, index: int, number: int | None = None) -> None:
        user, posted = self.screen.user, self.screen.pickable(number)
        problem = self._cannot_pick(posted, index, number)
        if problem:
            self.screen.show(problem)
            return
        assert posted is not None
        choice = posted.rendered.choices[index - 1]
        if choice.confirm and not self._confirmed(choice):
            self.screen.show(f"{plain(choice.confirm.get('deny')) or 'Cancelled'}: nothing done.")
            return
        respond, lease_id = self._respond(user), int(choice.value or 0)
        if choice.action_id in actions.LEASE_BUTTONS:
            act = actions.LEASE_BUTTONS[choice.action_id]
            self._submit(lambda: respond(text=act(self.bot, user, lease_id)), respond)
        elif choice.action_id == blocks.APPROVE:
            self._submit(lambda: actions.approve(self.bot, user, lease_id), respond)
        elif choice.action_id == blocks.DENY:
            self._deny(user, lease_id, respond)
        else:
            self.screen.show(f"`{choice.label}` has no console action yet; use it in Slack.")

    def _cannot_pick(self, posted: Posted | None, index: int, number: int | None) -> str | None:
        user = self.screen.user
        if posted is None:
            return (f"There is no message {number}." if number is not None else
                    f"Nothing to pick: no message with choices for {user} is open.")
        if not posted.visible_to(user):
            return (f"Message {posted.number} is for {posted.audience.user}; "
                    f"`:user {posted.audience.user}` acts as them.")
        if not posted.open:
            return f"Message {posted.number} was replaced; its choices are gone."
        count = len(posted.rendered.choices)
        if not 1 <= index <= count:
            return (f"Message {posted.number} has no choices." if not count else
                    f"Message {posted.number} has choices 1–{count}.")
        return None

    def _confirmed(self, choice: Choice) -> bool:
        answer = self._ask(confirm_question(choice.confirm or {}))
        yes = plain((choice.confirm or {}).get("confirm")).lower()
        return answer is not None and answer.strip().lower() in {"y", "yes", yes}

    def _deny(self, user: str, lease_id: int, respond: Callable[..., None]) -> None:
        try:  # refused before the modal opens, as in Slack
            view = actions.deny_modal_for(self.bot, user, lease_id)
        except DomainError as error:
            report(error, lambda text: respond(text=text))
            return
        values = self._modal(view)
        if values is None:
            self.screen.show(f"{plain(view.get('close')) or 'Cancel'}: nothing done.")
            return
        submitted = {**view, "state": {"values": values}}
        self._submit(lambda: actions.deny_submitted(self.bot, user, submitted), respond)

    def _modal(self, view: dict[str, Any]) -> dict[str, Any] | None:
        """Ask each field of a modal in turn; None when cancelled (Ctrl-D, :cancel)."""
        self.screen.show(f"── {plain(view.get('title'))} ── (:cancel or Ctrl-D cancels)")
        values: dict[str, Any] = {}
        for field in modal_fields(view):
            while True:
                answer = self._ask(f"{field.label}{' (optional)' if field.optional else ''}: ")
                if answer is None or answer.strip() == ":cancel":
                    return None
                answer = answer.strip()
                if not answer and not field.optional:
                    self.screen.show("This one is required (or :cancel).")
                elif field.max_length and len(answer) > field.max_length:
                    self.screen.show(f"At most {field.max_length} characters, please.")
                else:
                    break
            values.setdefault(field.block_id, {})[field.action_id] = {
                "type": "plain_text_input", "value": answer or None}
        return values

    # -------------------------------------------------------------- plumbing
    def _respond(self, user: str) -> Callable[..., None]:
        """Bolt's ``respond`` for the console: an ephemeral note to ``user``."""

        def respond(text: str = "", blocks: Any = None, **_: Any) -> None:
            self.screen.post(Audience(user=user, ephemeral=True), (text, blocks or []))

        return respond

    def _submit(self, work: Callable[[], Any], respond: Callable[..., None]) -> Future[Any]:
        def run() -> None:
            try:
                work()
            except Exception as error:  # noqa: BLE001 - told to the user, as in Slack
                report(error, lambda text: respond(text=text))

        future = self.pool.submit(run)
        self.pending = {f for f in self.pending if not f.done()} | {future}
        if self.settle:
            wait([future], timeout=self.settle)
        return future

    def _ask(self, question: str) -> str | None:
        try:
            answer = self.screen.ask(question, self.read)
        except (EOFError, KeyboardInterrupt):
            self.screen.show("")
            return None
        if readline and answer and readline.get_current_history_length():
            readline.remove_history_item(readline.get_current_history_length() - 1)
        return answer  # answers to questions stay out of the command history

    def _meta(self, line: str) -> bool:
        word, *args = line[1:].split()
        if word in {"q", "quit", "exit"}:
            return False
        if word in {"h", "help"}:
            self.screen.show(HELP)
        elif word == "user" and not args:
            others = ", ".join(u for u in self.users if u != self.screen.user) or "nobody yet"
            self.screen.show(f"You are {self._who(self.screen.user)}. Also here: {others}.")
        elif word == "user":
            user = args[0].upper()
            if len(args) > 1 or not USER_ID.fullmatch(user):
                self.screen.show("A user id has only letters and digits, e.g. `:user U0BOB`.")
                return True
            self.users = list(dict.fromkeys([*self.users, user]))
            self.screen.show(f"You are now {self._who(user)}.")
            self.screen.switch(user)
        else:
            self.screen.show(f"I don't know `:{word}`; `:help` lists the console commands.")
        return True

    def _who(self, user: str) -> str:
        return f"{user} (admin)" if self.bot.is_admin(user) else user

    def _prompt(self) -> str:
        return f"{self._who(self.screen.user)}> "

    def _readline(self) -> None:
        if not readline:
            return
        if self.history and self.history.exists():
            try:
                readline.read_history_file(self.history)
            except OSError as exc:
                log.warning("could not read the console history: %s", exc)
        readline.set_history_length(1000)
        words = [*(v.value for v in Verb), ":help", ":user", ":quit"]
        readline.set_completer(lambda text, state: (
            [w for w in words if w.startswith(text)] + [None])[state])
        readline.parse_and_bind("tab: complete")
