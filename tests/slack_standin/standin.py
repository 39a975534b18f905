"""``SlackStandIn``: a strict local Slack (Web API, response_url, Socket Mode) for tests.

    with SlackStandIn() as slack:
        app = App(token=slack.bot_token, client=WebClient(token=slack.bot_token,
                                                          base_url=slack.api_url))
        SocketModeHandler(app, slack.app_token).connect()
        slack.wait_for_connection()
        env = slack.slash_command("U0BOB00002", "status")
        assert env.latency < 3
        slack.wait_for(lambda: slack.ephemerals("U0BOB00002"))

For a bot run as a separate process, pass ``slack.env()`` into its environment.
"""

from __future__ import annotations

import dataclasses
from types import TracebackType
from typing import Any

from .config import StandInConfig, User
from .drive_api import DriveMixin
from .inspect_api import InspectMixin
from .server import ServerThread
from .store import Store


class SlackStandIn(InspectMixin, DriveMixin):
    """A Slack workspace on 127.0.0.1 with one installed app; see the package docs."""

    def __init__(self, config: StandInConfig | None = None, **overrides: Any) -> None:
        cfg = config or StandInConfig()
        if overrides:
            cfg = dataclasses.replace(cfg, **overrides)
        self.store = Store(cfg)
        self.server = ServerThread(self.store)
        self._started = False

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> SlackStandIn:
        """Start the server thread on a free port (idempotent)."""
        if not self._started:
            self.server.start()
            self._started = True
        return self

    def stop(self) -> None:
        """Close Socket Mode connections and stop the server."""
        if self._started:
            self.server.stop()
            self._started = False

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- identity ----------------------------------------------------------------------------
    @property
    def config(self) -> StandInConfig:
        return self.store.config

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/``."""
        return self.server.base_url

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/``: give it to the bot as SLACK_API_URL."""
        return self.server.base_url + "api/"

    @property
    def bot_token(self) -> str:
        return self.config.bot_token

    @property
    def app_token(self) -> str:
        return self.config.app_token

    @property
    def signing_secret(self) -> str:
        return self.config.signing_secret

    @property
    def team_id(self) -> str:
        return self.config.team_id

    @property
    def bot_user_id(self) -> str:
        return self.config.bot_user_id

    @property
    def users(self) -> tuple[User, ...]:
        return self.config.users

    @property
    def admins(self) -> tuple[User, ...]:
        return self.config.admins

    def user(self, name: str) -> User:
        """A configured user by name (``"alice"``) or id."""
        return next(u for u in self.config.users if name in (u.name, u.id))

    def env(self) -> dict[str, str]:
        """Environment for a bot process: SLACK_API_URL and the three credentials."""
        return {"SLACK_API_URL": self.api_url, "SLACK_BOT_TOKEN": self.bot_token,
                "SLACK_APP_TOKEN": self.app_token, "SLACK_SIGNING_SECRET": self.signing_secret}

    # --- world control --------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move the stand-in's clock (trigger_id and response_url expiry) forward."""
        with self.store.lock:
            self.store.offset += seconds

    def dm_channel(self, user_id: str) -> str:
        """The id of the app's DM with ``user_id`` (opened if needed), e.g. to run a slash
        command there."""
        self.store.user(user_id)
        return self.store.open_im(user_id).id
