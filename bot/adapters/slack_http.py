"""HTTP mode: Slack's signed requests served by waitress, with replays refused.

Bolt's ``app.start()`` is a development server: one thread, bound to every address, no
read timeout, so one client that sends half a request stalls every Slack delivery past
Slack's 3 s ack deadline. waitress reads requests in its asynchronous channel layer and
hands only complete ones to its worker threads, so a slow or stalled client costs a
socket, never a worker; idle or half-sent connections are closed after
``channel_timeout``.

Bolt checks the signature and refuses a timestamp more than 5 minutes off, but accepts
the same signed request again inside that window. ``ReplayGuard`` remembers each valid
signature until its timestamp leaves the window and refuses a second delivery (401).
It also refuses (401) what is not validly signed before Bolt sees it, so only signed
requests are remembered: nobody without the signing secret can fill the cache, which is
bounded all the same.

Slack only calls HTTPS request URLs, so the usual set-up is a TLS reverse proxy on the
same host forwarding to ``GPUBOT_HTTP_ADDRESS`` (default 127.0.0.1).
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier
from waitress import create_server

log = logging.getLogger(__name__)

WINDOW_SECONDS = 5 * 60  # Slack's (and Bolt's) accepted clock skew for a timestamp
MAX_BODY = 1 << 20  # Slack's payloads are a few KiB; waitress's default is 1 GiB
Environ = dict[str, Any]
WsgiApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]


class ReplayGuard:
    """WSGI middleware: a validly signed request is let through once per signature."""

    def __init__(self, inner: WsgiApp, *, signing_secret: str, max_entries: int = 50_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.inner = inner
        self.verifier = SignatureVerifier(signing_secret)
        self.max_entries = max_entries
        self.clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature → forget after
        self._lock = threading.Lock()

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)  # Bolt reads it again
            timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP")
            signature = environ.get("HTTP_X_SLACK_SIGNATURE")
            if not self._valid(body, timestamp, signature):  # Bolt's 500 for "ts=soon"
                return _refuse(start_response, b"invalid request signature")
            if not self.first_time(str(signature), int(str(timestamp))):
                log.warning("refused a replayed Slack request (timestamp %s)", timestamp)
                return _refuse(start_response, b"replayed request")
        return self.inner(environ, start_response)

    def _valid(self, body: bytes, timestamp: str | None, signature: str | None) -> bool:
        try:
            return self.verifier.is_valid(body, timestamp, signature)
        except ValueError:  # a timestamp that is not a number: Bolt refuses it too
            return False

    def first_time(self, signature: str, timestamp: int) -> bool:
        """Record ``signature``; False when it was already seen inside the window."""
        now = self.clock()
        with self._lock:
            while self._seen:  # entries expire in insertion order, near enough
                oldest, until = next(iter(self._seen.items()))
                if until > now and len(self._seen) < self.max_entries:
                    break
                del self._seen[oldest]
            if signature in self._seen:
                return False
            # A timestamp up to 5 minutes ahead stays valid 5 minutes past it.
            self._seen[signature] = max(now, timestamp) + WINDOW_SECONDS + 1
            return True


def _refuse(start_response: Callable[..., Any], why: bytes) -> list[bytes]:
    start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                        ("Content-Length", str(len(why)))])
    return [why]


class SlackHttpServer:
    """The Bolt app behind waitress on ``address:port`` (port 0: any free port)."""

    def __init__(self, app: App, *, signing_secret: str, address: str, port: int,
                 threads: int = 8, channel_timeout: int = 10, connection_limit: int = 500,
                 path: str = "/slack/events") -> None:
        wsgi = ReplayGuard(SlackRequestHandler(app, path=path), signing_secret=signing_secret)
        self._server: Any = create_server(
            wsgi, host=address, port=port, threads=threads,
            channel_timeout=channel_timeout,  # a half-sent request is dropped after this
            cleanup_interval=max(1, channel_timeout // 2),
            connection_limit=connection_limit, max_request_body_size=MAX_BODY,
            max_request_header_size=64 * 1024, clear_untrusted_proxy_headers=True,
            ident="gpubot")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        return str(self._server.effective_host), int(self._server.effective_port)

    def start(self) -> SlackHttpServer:
        self._thread = threading.Thread(target=self._run, name="gpubot-http", daemon=True)
        self._thread.start()
        log.info("HTTP mode: serving Slack requests on http://%s:%s/slack/events",
                 *self.address)
        return self

    def _run(self) -> None:
        server = self._server
        try:
            while not self._stop.is_set():  # one poll at a time so stop() is seen
                server.asyncore.loop(timeout=0.2, map=server._map, count=1)
        finally:  # in this thread: the loop's sockets are never closed under it
            for dispatcher in list(server._map.values()):
                dispatcher.close()
            server.task_dispatcher.shutdown(timeout=5)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def serve_http(app: App, *, signing_secret: str, address: str, port: int,
               stop: threading.Event) -> None:
    """Serve until ``stop`` is set (``gpubot serve`` in HTTP mode)."""
    server = SlackHttpServer(app, signing_secret=signing_secret, address=address,
                             port=port).start()
    try:
        stop.wait()
    finally:
        server.stop()
