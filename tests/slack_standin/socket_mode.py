"""Socket Mode over WebSocket (aiohttp): ``GET /link/?ticket=...&app_id=...``.

On connect the server sends ``{"type": "hello", ...}`` like Slack. ``SocketModeHub.send``
puts an envelope on the newest open connection and (optionally) waits for the app's ack
``{"envelope_id": ..., "payload": {...}}``; latencies are measured send→ack with the
monotonic clock and stored on the ``Envelope`` record. An ack later than
``ack_timeout_s`` (3 s) is recorded as a problem and its payload ignored, as Slack has
already given up on it. ``disconnect`` messages (Slack's
``refresh_requested``) make the app reconnect through ``apps.connections.open``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from .errors import AckTimeout, NotConnected
from .records import Envelope
from .store import Store

AckCallback = Callable[[Envelope], None]


class SocketModeHub:
    """Open Socket Mode connections and envelopes awaiting acks (lives on the server loop)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.connections: list[web.WebSocketResponse] = []
        self.connections_total = 0
        self._waiters: dict[str, asyncio.Future[Envelope]] = {}
        self._on_ack: dict[str, AckCallback] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The WebSocket endpoint."""
        ticket = request.query.get("ticket", "")
        with self.store.lock:
            known = ticket in self.store.tickets
        if not known or request.query.get("app_id") != self.store.config.app_id:
            return web.Response(status=401, text="invalid_ticket")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections.append(ws)
        self.connections_total += 1
        await ws.send_str(json.dumps({
            "type": "hello", "num_connections": len(self.connections),
            "debug_info": {"host": "applink-standin", "build_number": 1,
                           "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.store.config.app_id},
        }))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            if ws in self.connections:
                self.connections.remove(ws)
        return ws

    def _on_text(self, data: str) -> None:
        now = time.monotonic()
        try:
            msg = json.loads(data)
            envelope_id = msg["envelope_id"]
        except (ValueError, KeyError, TypeError):
            self.store.problem(f"socket mode: app sent a non-ack message: {data[:200]}")
            return
        with self.store.lock:
            env = self.store.envelopes.get(envelope_id)
            if env is None:
                self.store.problem(f"socket mode: ack for unknown envelope {envelope_id}")
                return
            if env.acked:
                env.problems.append("acked twice")
                self.store.problem(f"socket mode: envelope {envelope_id} acked twice")
                return
            env.acked_at = now
            payload = msg.get("payload")
            env.ack_payload = payload if isinstance(payload, dict) else None
            if payload is not None and not isinstance(payload, dict):
                env.problems.append("ack payload is not an object")
            limit = self.store.config.ack_timeout_s
            callback = self._on_ack.pop(envelope_id, None)
            if env.latency is not None and env.latency > limit:  # Slack gave up: ignored
                callback = None
                env.problems.append(f"acked after {env.latency:.3f}s")
                self.store.problem(f"socket mode: {env.type} {envelope_id} acked after "
                                   f"{env.latency:.3f}s (limit {limit}s); ack payload ignored")
        if callback is not None:
            try:
                with self.store.lock:
                    callback(env)
            except Exception as exc:  # keep the connection alive, surface the problem
                self.store.problem(f"socket mode: handling ack of {envelope_id} failed: {exc!r}")
        waiter = self._waiters.pop(envelope_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(env)

    async def wait_connected(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not [c for c in self.connections if not c.closed]:
            if time.monotonic() > deadline:
                raise NotConnected(f"no Socket Mode connection within {timeout}s")
            await asyncio.sleep(0.01)

    async def send(self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool,
                   wait: bool, timeout: float, connect_timeout: float,
                   on_ack: AckCallback | None = None, retry_attempt: int | None = None,
                   retry_reason: str | None = None) -> Envelope:
        """Send one envelope; with ``wait`` return once acked (``AckTimeout`` otherwise)."""
        await self.wait_connected(connect_timeout)
        ws = [c for c in self.connections if not c.closed][-1]
        envelope_id = str(uuid.uuid4())
        body: dict[str, Any] = {"envelope_id": envelope_id, "payload": payload, "type": kind,
                                "accepts_response_payload": accepts_response_payload}
        if kind == "events_api":
            body["retry_attempt"] = retry_attempt or 0
            body["retry_reason"] = retry_reason or ""
        env = Envelope(envelope_id, kind, payload, time.monotonic())
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        with self.store.lock:
            self.store.envelopes[envelope_id] = env
            self._waiters[envelope_id] = future
            if on_ack is not None:
                self._on_ack[envelope_id] = on_ack
        env.sent_at = time.monotonic()
        await ws.send_str(json.dumps(body))
        if not wait:
            return env
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise AckTimeout(f"{kind} envelope {envelope_id} not acked within {timeout}s") from None

    async def request_reconnect(self, close_after: float | None = None) -> int:
        """Send Slack's ``disconnect`` (refresh_requested) to every open connection and,
        with ``close_after``, close those connections that many seconds later."""
        open_ws = [c for c in self.connections if not c.closed]
        for ws in open_ws:
            await ws.send_str(json.dumps({"type": "disconnect", "reason": "refresh_requested",
                                          "debug_info": {"host": "applink-standin"}}))
        if close_after is not None:
            async def close_later() -> None:
                await asyncio.sleep(close_after)
                for ws in open_ws:
                    await ws.close(code=1001, message=b"refresh")

            task = asyncio.get_running_loop().create_task(close_later())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(open_ws)

    async def close_all(self) -> None:
        for ws in list(self.connections):
            await ws.close(code=1001, message=b"stand-in stopping")
        self.connections.clear()
