"""Workspace configuration of the Slack stand-in: tokens, team, bot identity, users, channels.

Everything has a sensible default so ``StandInConfig()`` describes a small workspace with
three people (one admin), a ``#general`` and a ``#gpu-admins`` channel and one installed
app. Tests override fields with ``dataclasses.replace`` or keyword arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class User:
    """A workspace member as ``users.info`` describes it."""

    id: str
    name: str
    real_name: str = ""
    is_admin: bool = False
    is_bot: bool = False
    deleted: bool = False
    tz: str = "Europe/Berlin"

    def to_slack(self, team_id: str) -> dict[str, Any]:
        """The ``user`` object of ``users.info`` (the fields bots commonly read)."""
        real = self.real_name or self.name
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "deleted": self.deleted,
            "real_name": real,
            "tz": self.tz,
            "tz_label": "Central European Time",
            "tz_offset": 3600,
            "is_admin": self.is_admin,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": 1700000000,
            "profile": {
                "real_name": real,
                "display_name": self.name,
                "real_name_normalized": real,
                "display_name_normalized": self.name,
                "email": f"{self.name}@example.test" if not self.is_bot else None,
                "team": team_id,
            },
        }


@dataclass(frozen=True)
class Channel:
    """A public or private channel. ``members=None`` means every configured user."""

    id: str
    name: str
    is_private: bool = False
    bot_is_member: bool = True
    members: tuple[str, ...] | None = None


def _default_users() -> tuple[User, ...]:
    return (
        User("U0ALICE001", "alice", "Alice Admin", is_admin=True),
        User("U0BOB00002", "bob", "Bob Builder"),
        User("U0CAROL003", "carol", "Carol Coder"),
        User("U0DAVE0004", "dave", "Dave Developer"),
    )


def _default_channels() -> tuple[Channel, ...]:
    return (
        Channel("C0GENERAL1", "general"),
        Channel("C0GPUADMIN", "gpu-admins", is_private=True),
    )


@dataclass(frozen=True)
class StandInConfig:
    """Identity and credentials of the simulated workspace and app."""

    bot_token: str = "xoxb-1111111111-2222222222-standinbottoken"
    app_token: str = "xapp-1-A0GPUBOT01-3333333333-standinapptoken"
    signing_secret: str = "standin-signing-secret-0123456789abcdef"
    verification_token: str = "standinVerificationToken"
    team_id: str = "T0STANDIN1"
    team_domain: str = "standin-lab"
    team_name: str = "Stand-in Lab"
    app_id: str = "A0GPUBOT01"
    bot_id: str = "B0GPUBOT01"
    bot_user_id: str = "U0GPUBOT01"
    bot_name: str = "gpubot"
    users: tuple[User, ...] = field(default_factory=_default_users)
    channels: tuple[Channel, ...] = field(default_factory=_default_channels)
    host: str = "127.0.0.1"
    port: int = 0
    trigger_ttl_s: float = 3.0
    response_url_ttl_s: float = 30 * 60.0
    response_url_max_uses: int = 5
    ack_timeout_s: float = 3.0  # Slack's limit; later acks are recorded as problems
    ack_wait_s: float = 10.0  # how long driving helpers wait for an ack before AckTimeout
    connect_wait_s: float = 10.0  # how long they wait for a Socket Mode connection
    # chat.postMessage per channel: (burst, window seconds), answered past it with HTTP 429
    # and Retry-After, as Slack does (ratelimit.py); None: no limit
    post_limit: tuple[int, float] | None = None

    @property
    def admins(self) -> tuple[User, ...]:
        """Users with ``is_admin`` set."""
        return tuple(u for u in self.users if u.is_admin)

    def bot_user(self) -> User:
        """The app's bot user (answers ``users.info`` for ``bot_user_id``)."""
        return User(self.bot_user_id, self.bot_name, self.bot_name, is_bot=True)
