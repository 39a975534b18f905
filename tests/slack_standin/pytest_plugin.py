"""pytest fixtures for the Slack stand-in.

Use from a conftest (root conftest: ``pytest_plugins = ["slack_standin.pytest_plugin"]``
or ``"tests.slack_standin.pytest_plugin"`` depending on the import root; elsewhere:
``from slack_standin.pytest_plugin import slack_standin, slack_standin_config``).

* ``slack_standin_config`` – the ``StandInConfig``; override this fixture to change users,
  channels or tokens.
* ``slack_standin`` – a started ``SlackStandIn`` per test, stopped afterwards.
* ``bolt_socket_app`` – a factory: ``bolt_socket_app(register)`` builds a slack_bolt ``App``
  wired to the stand-in, calls ``register(app)``, connects a ``SocketModeHandler`` and waits
  for the connection; it is closed at teardown.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .config import StandInConfig
from .standin import SlackStandIn


@pytest.fixture
def slack_standin_config() -> StandInConfig:
    """The default workspace (override in a conftest to customise)."""
    return StandInConfig()


@pytest.fixture
def slack_standin(slack_standin_config: StandInConfig) -> Iterator[SlackStandIn]:
    """A running stand-in for one test."""
    standin = SlackStandIn(slack_standin_config).start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def bolt_socket_app(slack_standin: SlackStandIn) -> Iterator[Callable[..., Any]]:
    """Factory for an in-process bolt App connected to the stand-in over Socket Mode."""
    from slack_bolt import App
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk import WebClient

    handlers: list[Any] = []

    def make(register: Callable[[Any], None] | None = None, **app_kwargs: Any) -> Any:
        client = WebClient(token=slack_standin.bot_token, base_url=slack_standin.api_url)
        app = App(client=client, **app_kwargs)
        if register is not None:
            register(app)
        handler = SocketModeHandler(app, slack_standin.app_token)
        handlers.append(handler)
        handler.connect()  # type: ignore[no-untyped-call]
        slack_standin.wait_for_connection()
        return app

    yield make
    for handler in handlers:  # no reconnect; server-side close unblocks the client's recv
        handler.client.auto_reconnect_enabled = False
    slack_standin.disconnect_all()
    for handler in handlers:
        deadline = time.monotonic() + 3.0
        while handler.client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            handler.close()
        except AttributeError:  # slack_sdk race: its session thread closed the socket first
            pass
