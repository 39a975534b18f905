"""Plain records the stand-in keeps and hands to tests: messages, ephemerals, views,
Web API calls, envelopes with their acks, response_url posts."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


def collect_text(node: Any) -> list[str]:
    """Every ``text``/``value``/``url`` string inside a block structure, depth first."""
    out: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("text", "value", "url", "alt_text") and isinstance(value, str):
                out.append(value)
            else:
                out.extend(collect_text(value))
    elif isinstance(node, list):
        for item in node:
            out.extend(collect_text(item))
    return out


@dataclass
class Message:
    """A channel/DM message; ``history`` holds earlier versions replaced by updates."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    user: str
    bot_id: str | None
    source: str
    thread_ts: str | None = None
    deleted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # ids of files shared with it

    @property
    def all_text(self) -> str:
        """Top-level text plus every text inside the blocks, newline separated."""
        return "\n".join([self.text, *collect_text(self.blocks)])

    def to_slack(self, team_id: str, app_id: str) -> dict[str, Any]:
        """The message object as Slack returns it (``message`` field, interactive payloads)."""
        msg: dict[str, Any] = {
            "type": "message", "user": self.user, "text": self.text, "ts": self.ts,
            "team": team_id, "bot_id": self.bot_id, "app_id": app_id,
            "blocks": copy.deepcopy(self.blocks),
        }
        if self.thread_ts:
            msg["thread_ts"] = self.thread_ts
        if self.history:
            msg["edited"] = {"user": self.user, "ts": self.ts}
        return msg


@dataclass
class Ephemeral:
    """A message only ``user`` sees in ``channel`` (chat.postEphemeral, response_url, ack)."""

    channel: str
    user: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    source: str
    deleted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def all_text(self) -> str:
        """Top-level text plus every text inside the blocks."""
        return "\n".join([self.text, *collect_text(self.blocks)])


@dataclass
class ViewRecord:
    """A modal or home view as stored by Slack (``view`` is the full view object)."""

    id: str
    user: str
    view: dict[str, Any]
    closed: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def type(self) -> str:
        return str(self.view.get("type"))

    @property
    def callback_id(self) -> str:
        return str(self.view.get("callback_id") or "")


@dataclass(frozen=True)
class Call:
    """One Web API request: method, decoded args (token removed), outcome, clock time."""

    method: str
    args: dict[str, Any]
    ok: bool
    error: str | None
    time: float
    response: dict[str, Any]
    token_type: str | None


@dataclass
class Envelope:
    """A Socket Mode envelope sent to the app and the ack that came back (if any)."""

    envelope_id: str
    type: str
    payload: dict[str, Any]
    sent_at: float
    acked_at: float | None = None
    ack_payload: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def acked(self) -> bool:
        return self.acked_at is not None

    @property
    def latency(self) -> float | None:
        """Seconds from send to ack (monotonic clock), None if not acked."""
        return None if self.acked_at is None else self.acked_at - self.sent_at


@dataclass
class ResponseUrl:
    """A response_url handed out with a slash command or interactive payload."""

    id: str
    url: str
    user: str
    channel: str
    issued_at: float
    origin: tuple[str, str] | None  # ("message"|"ephemeral", ts) of the message acted on
    posts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Trigger:
    """A trigger_id: single use, valid ``trigger_ttl_s`` seconds after issue."""

    id: str
    user: str
    issued_at: float
    used: bool = False


@dataclass
class FileRecord:
    """A file of the external upload flow: announced (files.getUploadURLExternal), its
    bytes posted to the upload URL, then completed (files.completeUploadExternal)."""

    id: str
    filename: str
    length: int  # as announced
    alt_txt: str | None
    user: str
    created: float
    data: bytes | None = None  # None until uploaded
    title: str | None = None
    completed: bool = False
    channels: list[str] = field(default_factory=list)

    @property
    def mimetype(self) -> str:
        return "image/png" if (self.data or b"").startswith(b"\x89PNG\r\n\x1a\n") \
            else "application/octet-stream"

    def to_slack(self) -> dict[str, Any]:
        return {"id": self.id, "created": int(self.created), "name": self.filename,
                "title": self.title or self.filename, "mimetype": self.mimetype,
                "size": len(self.data or b""), "user": self.user, "channels": list(self.channels)}
