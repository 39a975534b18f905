"""In-memory state of the simulated workspace, shared by the server thread and the test.

All mutation happens under ``Store.lock`` (a re-entrant lock); the public read helpers of
``SlackStandIn`` take the same lock and return copies. ``now()`` is wall-clock time plus an
offset that tests move with ``advance()`` so that expiry rules (trigger_id 3 s,
response_url 30 min) can be tested without sleeping.
"""

from __future__ import annotations

import itertools
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .config import StandInConfig, User
from .errors import SlackError
from .records import (Call, Envelope, Ephemeral, FileRecord, Message, ResponseUrl, Trigger,
                      ViewRecord)

_ALNUM = string.ascii_uppercase + string.digits


@dataclass
class ChannelState:
    """A conversation: ``kind`` is channel, im or mpim."""

    id: str
    name: str
    kind: str
    members: set[str]
    bot_is_member: bool = True
    is_private: bool = False
    im_user: str | None = None


@dataclass
class Store:
    """Everything the stand-in remembers."""

    config: StandInConfig
    lock: threading.RLock = field(default_factory=threading.RLock)
    offset: float = 0.0
    users: dict[str, User] = field(default_factory=dict)
    channels: dict[str, ChannelState] = field(default_factory=dict)
    messages: dict[tuple[str, str], Message] = field(default_factory=dict)
    ephemerals: list[Ephemeral] = field(default_factory=list)
    views: dict[str, ViewRecord] = field(default_factory=dict)
    modal_stacks: dict[str, list[str]] = field(default_factory=dict)
    home_views: dict[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    envelopes: dict[str, Envelope] = field(default_factory=dict)
    response_urls: dict[str, ResponseUrl] = field(default_factory=dict)
    triggers: dict[str, Trigger] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    tickets: dict[str, float] = field(default_factory=dict)
    files: dict[str, FileRecord] = field(default_factory=dict)  # by id
    upload_tickets: dict[str, str] = field(default_factory=dict)  # upload URL ticket -> id
    _last_ts: float = 0.0
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        cfg = self.config
        self.users = {u.id: u for u in cfg.users}
        self.users[cfg.bot_user_id] = cfg.bot_user()
        humans = {u.id for u in cfg.users}
        for ch in cfg.channels:
            members = set(ch.members) if ch.members is not None else set(humans)
            self.channels[ch.id] = ChannelState(ch.id, ch.name, "channel", members,
                                                ch.bot_is_member, ch.is_private)

    # --- clock and ids -------------------------------------------------------------
    def now(self) -> float:
        """Simulated wall-clock time (``time.time()`` plus the ``advance()`` offset)."""
        return time.time() + self.offset

    def next_ts(self) -> str:
        """A unique, increasing message timestamp like ``"1700000000.000100"``."""
        with self.lock:
            t = max(round(self.now(), 6), round(self._last_ts + 0.000001, 6))
            self._last_ts = t
            return f"{t:.6f}"

    def new_id(self, prefix: str, length: int = 10) -> str:
        """A Slack-looking id: prefix plus uppercase alphanumerics."""
        return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length - len(prefix)))

    def seq(self) -> int:
        return int(next(self._seq))

    # --- conversations ---------------------------------------------------------------
    def user(self, user_id: str) -> User:
        u = self.users.get(user_id)
        if u is None or u.deleted:
            raise SlackError("user_not_found")
        return u

    def open_im(self, user_id: str) -> ChannelState:
        """The app's DM with ``user_id`` (created on first use, like Slack)."""
        with self.lock:
            for ch in self.channels.values():
                if ch.kind == "im" and ch.im_user == user_id:
                    return ch
            ch = ChannelState(self.new_id("D"), user_id, "im", {user_id}, True, True, user_id)
            self.channels[ch.id] = ch
            return ch

    def resolve_channel(self, arg: str, *, user_ids_open_dm: bool) -> ChannelState:
        """Channel by id or (#)name; a user id maps to the app DM when allowed."""
        with self.lock:
            if arg in self.channels:
                return self.channels[arg]
            if user_ids_open_dm and arg in self.users and arg != self.config.bot_user_id:
                self.user(arg)
                return self.open_im(arg)
            name = arg.lstrip("#")
            for ch in self.channels.values():
                if ch.kind == "channel" and ch.name == name:
                    return ch
            raise SlackError("channel_not_found")

    def im_of(self, user_id: str) -> str | None:
        with self.lock:
            for ch in self.channels.values():
                if ch.kind == "im" and ch.im_user == user_id:
                    return ch.id
            return None

    # --- triggers and response urls --------------------------------------------------
    def issue_trigger(self, user_id: str) -> str:
        with self.lock:
            tid = (f"{self.seq()}{secrets.randbelow(10**6)}.{int(self.now())}."
                   f"{secrets.token_hex(16)}")
            self.triggers[tid] = Trigger(tid, user_id, self.now())
            return tid

    def redeem_trigger(self, trigger_id: str | None) -> Trigger:
        """Consume a trigger_id: ``invalid_trigger_id`` / ``expired_trigger_id`` /
        ``exchanged_trigger_id`` as Slack documents them."""
        with self.lock:
            trig = self.triggers.get(trigger_id or "")
            if trig is None:
                raise SlackError("invalid_trigger_id")
            if trig.used:
                raise SlackError("exchanged_trigger_id")
            if self.now() - trig.issued_at > self.config.trigger_ttl_s:
                raise SlackError("expired_trigger_id")
            trig.used = True
            return trig

    def issue_response_url(self, base: str, user_id: str, channel_id: str,
                           origin: tuple[str, str] | None) -> str:
        with self.lock:
            rid = f"{self.config.team_id}/{self.seq()}/{secrets.token_urlsafe(18)}"
            url = f"{base}response/{rid}"
            self.response_urls[rid] = ResponseUrl(rid, url, user_id, channel_id, self.now(), origin)
            return url

    # --- recording ---------------------------------------------------------------------
    def record_call(self, method: str, args: dict[str, Any], body: dict[str, Any],
                    token_type: str | None) -> None:
        with self.lock:
            ok = bool(body.get("ok"))
            self.calls.append(Call(method, args, ok, None if ok else body.get("error"),
                                   self.now(), body, token_type))

    def problem(self, text: str) -> None:
        """Note a contract violation that does not surface as an API error."""
        with self.lock:
            self.problems.append(text)

    def add_message(self, channel: str, text: str, blocks: list[dict[str, Any]], source: str,
                    thread_ts: str | None = None) -> Message:
        with self.lock:
            cfg = self.config
            msg = Message(channel, self.next_ts(), text, blocks, cfg.bot_user_id, cfg.bot_id,
                          source, thread_ts)
            self.messages[(channel, msg.ts)] = msg
            return msg

    def add_ephemeral(self, channel: str, user: str, text: str, blocks: list[dict[str, Any]],
                      source: str) -> Ephemeral:
        with self.lock:
            eph = Ephemeral(channel, user, self.next_ts(), text, blocks, source)
            self.ephemerals.append(eph)
            return eph

    def find_ephemeral(self, ts: str) -> Ephemeral | None:
        with self.lock:
            return next((e for e in self.ephemerals if e.ts == ts and not e.deleted), None)
