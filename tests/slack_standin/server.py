"""The aiohttp server of the stand-in, run on its own event loop in a daemon thread.

Routes: ``/api/{method}`` (Web API), ``/response/{rid}`` (response_url),
``/upload/v1/{ticket}`` (file upload URLs), ``/link/`` (Socket Mode WebSocket).
``ServerThread.run`` lets the test thread execute a
coroutine on the server loop and wait for its result.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiohttp import web

from .methods_chat import HANDLERS as CHAT_HANDLERS
from .methods_files import HANDLERS as FILE_HANDLERS
from .methods_files import make_upload_handler
from .methods_views import HANDLERS as VIEW_HANDLERS
from .response_url import make_response_url_handler
from .socket_mode import SocketModeHub
from .store import Store
from .webapi import make_api_handler

T = TypeVar("T")


class ServerThread:
    """Owns the loop, the aiohttp runner and the Socket Mode hub."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.hub = SocketModeHub(store)
        self.port: int = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.store.config.host}:{self.port}/"

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        api = make_api_handler(self.store, {**CHAT_HANDLERS, **VIEW_HANDLERS,
                                            **FILE_HANDLERS}, lambda: self.base_url)
        app.router.add_route("*", "/api/{method}", api)
        app.router.add_post("/response/{rid:.+}", make_response_url_handler(self.store))
        app.router.add_post("/upload/v1/{ticket}", make_upload_handler(self.store))
        app.router.add_get("/link/", self.hub.handle)
        app.router.add_get("/link", self.hub.handle)
        return app

    async def _setup(self) -> None:
        self._runner = web.AppRunner(self._app(), handle_signals=False, shutdown_timeout=1.0,
                                     access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.store.config.host, self.store.config.port)
        await site.start()
        server = site._server  # aiohttp exposes the bound socket only here
        sockets = getattr(server, "sockets", None)
        assert sockets, "aiohttp site has no listening socket"
        self.port = int(sockets[0].getsockname()[1])

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._setup())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._main, name="slack-standin", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("Slack stand-in did not start in time")
        if self._error is not None:
            raise RuntimeError(f"Slack stand-in failed to start: {self._error!r}") from self._error

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the server loop and return its result (re-raising its error)."""
        if self._loop is None or not self._loop.is_running():
            coro.close()
            raise RuntimeError("Slack stand-in is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        loop = self._loop
        if loop is None or not loop.is_running():
            return

        async def teardown() -> None:
            await self.hub.close_all()
            if self._runner is not None:
                await self._runner.cleanup()

        try:
            self.run(teardown(), timeout=10.0)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10.0)
            self._loop = None
