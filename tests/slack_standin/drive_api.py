"""Driving side of ``SlackStandIn``: what users do in Slack, sent to the app over Socket
Mode (or, for HTTP-mode apps, as signed HTTP requests)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from . import acks, payloads
from .errors import AckTimeout, StandInUsageError
from .records import Envelope, Ephemeral, Message, ViewRecord
from .server import ServerThread
from .signing import JSON, SignedResponse, interactive_body, post_signed
from .store import Store


class DriveMixin:
    """Envelope senders; expects ``self.store`` and ``self.server``."""

    store: Store
    server: ServerThread

    # --- Socket Mode ---------------------------------------------------------------------
    def wait_for_connection(self, timeout: float | None = None) -> None:
        """Block until the app holds an open Socket Mode connection."""
        self.server.run(self.server.hub.wait_connected(timeout or self.store.config.connect_wait_s))

    def send_envelope(self, kind: str, payload: dict[str, Any], *,
                      accepts_response_payload: bool = False, wait: bool = True,
                      timeout: float | None = None, on_ack: Any = None,
                      retry_attempt: int | None = None,
                      retry_reason: str | None = None) -> Envelope:
        """Send any envelope (``events_api``, ``interactive``, ``slash_commands``)."""
        cfg = self.store.config
        wait_s = timeout or cfg.ack_wait_s
        send = self.server.hub.send(
            kind, payload, accepts_response_payload=accepts_response_payload, wait=wait,
            timeout=wait_s, connect_timeout=cfg.connect_wait_s, on_ack=on_ack,
            retry_attempt=retry_attempt, retry_reason=retry_reason)
        return self.server.run(send, timeout=wait_s + cfg.connect_wait_s + 5)

    def wait_ack(self, envelope_id: str, timeout: float | None = None) -> Envelope:
        """Wait for the ack of an envelope sent with ``wait=False``."""
        deadline = time.monotonic() + (timeout or self.store.config.ack_wait_s)
        env = self.store.envelopes[envelope_id]
        while not env.acked:
            if time.monotonic() > deadline:
                raise AckTimeout(f"envelope {envelope_id} not acked")
            time.sleep(0.005)
        return env

    def slash_command(self, user_id: str, text: str = "", *, channel_id: str | None = None,
                      command: str = "/gpu", wait: bool = True,
                      timeout: float | None = None) -> Envelope:
        """``user_id`` types ``{command} {text}`` in ``channel_id`` (default: first channel)."""
        with self.store.lock:
            channel = channel_id or self.store.config.channels[0].id
            payload = payloads.slash_command(self.store, self.server.base_url, user_id=user_id,
                                             text=text, channel_id=channel, command=command)
            on_ack = acks.slash_command_ack(self.store, user_id, channel)
        return self.send_envelope("slash_commands", payload, accepts_response_payload=True,
                                  wait=wait, timeout=timeout, on_ack=on_ack)

    def _target(self, user_id: str, message_ts: str | None, channel: str | None,
                view_id: str | None) -> Message | Ephemeral | ViewRecord:
        store = self.store
        if view_id is not None:
            rec = store.views.get(view_id)
            if rec is None or rec.closed or rec.user != user_id:
                raise StandInUsageError(f"view {view_id} is not open for {user_id}")
            return rec
        if message_ts is None:
            raise StandInUsageError("block_action needs message_ts (and channel) or view_id")
        cid = None
        if channel is not None:
            cid = store.im_of(channel) if channel in store.users else \
                store.resolve_channel(channel, user_ids_open_dm=False).id
        msg = next((m for m in store.messages.values() if m.ts == message_ts and not m.deleted
                    and (cid is None or m.channel == cid)), None)
        if msg is not None:
            ch = store.channels[msg.channel]
            if user_id not in ch.members:
                raise StandInUsageError(f"{user_id} cannot see {msg.channel}")
            return msg
        eph = store.find_ephemeral(message_ts)
        if eph is None or eph.user != user_id or (cid is not None and eph.channel != cid):
            raise StandInUsageError(f"no message {message_ts} visible to {user_id}")
        return eph

    def block_action(self, user_id: str, action_id: str, value: Any = None, *,
                     message_ts: str | None = None, channel: str | None = None,
                     view_id: str | None = None, block_id: str | None = None,
                     wait: bool = True, timeout: float | None = None) -> Envelope:
        """``user_id`` clicks/selects the element ``action_id`` in a message (``message_ts``,
        optional ``channel``: id or user id for the DM) or in a view (``view_id``). For
        buttons ``value`` picks among same-id buttons; for selects it is the chosen value."""
        with self.store.lock:
            target = self._target(user_id, message_ts, channel, view_id)
            payload = payloads.block_actions(self.store, self.server.base_url, user_id=user_id,
                                             action_id=action_id, value=value, target=target,
                                             block_id=block_id)
        return self.send_envelope("interactive", payload, wait=wait, timeout=timeout)

    def view_submission(self, user_id: str, view: str | Mapping[str, Any] | None = None,
                        values: Mapping[str, Mapping[str, Any]] | None = None, *,
                        wait: bool = True, timeout: float | None = None) -> Envelope:
        """``user_id`` submits their top modal (or ``view``: id or view dict) with
        ``values`` = ``{block_id: {action_id: value}}``."""
        with self.store.lock:
            stack = self.store.modal_stacks.get(user_id) or []
            if isinstance(view, str):
                vid: str | None = view
            elif view is not None:
                vid = view.get("id")
            else:
                vid = stack[-1] if stack else None
            if vid is None or not stack or stack[-1] != vid:
                raise StandInUsageError(f"view {vid} is not the open modal of {user_id}")
            rec = self.store.views[vid]
            payload = payloads.view_submission(self.store, user_id=user_id, rec=rec,
                                               values=dict(values or {}))
            on_ack = acks.view_submission_ack(self.store, user_id, vid)
        return self.send_envelope("interactive", payload, accepts_response_payload=True,
                                  wait=wait, timeout=timeout, on_ack=on_ack)

    def event(self, event: dict[str, Any], *, wait: bool = True, timeout: float | None = None,
              retry_attempt: int | None = None, retry_reason: str | None = None) -> Envelope:
        """Deliver any Events API event wrapped in an ``event_callback``."""
        with self.store.lock:
            payload = payloads.event_callback(self.store, event)
        return self.send_envelope("events_api", payload, wait=wait, timeout=timeout,
                                  retry_attempt=retry_attempt, retry_reason=retry_reason)

    def app_home_opened(self, user_id: str, *, wait: bool = True,
                        timeout: float | None = None) -> Envelope:
        """``user_id`` opens the app's Home tab."""
        with self.store.lock:
            event = payloads.app_home_opened(self.store, user_id)
        return self.event(event, wait=wait, timeout=timeout)

    def request_reconnect(self, close_after: float | None = None) -> int:
        """Send Slack's ``disconnect`` (refresh_requested); returns connections told. Slack
        drops the old connection some seconds later: ``close_after`` does that here."""
        return self.server.run(self.server.hub.request_reconnect(close_after))

    def disconnect_all(self) -> None:
        """Close every Socket Mode connection from the server side (as Slack may)."""
        self.server.run(self.server.hub.close_all())

    # --- HTTP mode -------------------------------------------------------------------------
    def post_signed(self, url: str, body: str | bytes | Mapping[str, Any],
                    **kw: Any) -> SignedResponse:
        """POST ``body`` signed with this workspace's signing secret (see ``signing``)."""
        kw.setdefault("secret", self.store.config.signing_secret)
        return post_signed(url, body, **kw)

    def http_slash_command(self, url: str, user_id: str, text: str = "", *,
                           channel_id: str | None = None, command: str = "/gpu") -> SignedResponse:
        """A signed slash command request to an HTTP-mode app."""
        with self.store.lock:
            payload = payloads.slash_command(
                self.store, self.server.base_url, user_id=user_id, text=text,
                channel_id=channel_id or self.store.config.channels[0].id, command=command)
        return self.post_signed(url, payload)

    def http_block_action(self, url: str, user_id: str, action_id: str, value: Any = None, *,
                          message_ts: str | None = None, channel: str | None = None,
                          view_id: str | None = None,
                          block_id: str | None = None) -> SignedResponse:
        """A signed block_actions request (``payload=<json>``) to an HTTP-mode app."""
        with self.store.lock:
            target = self._target(user_id, message_ts, channel, view_id)
            payload = payloads.block_actions(self.store, self.server.base_url, user_id=user_id,
                                             action_id=action_id, value=value, target=target,
                                             block_id=block_id)
        return self.post_signed(url, interactive_body(payload))

    def http_event(self, url: str, event: dict[str, Any]) -> SignedResponse:
        """A signed Events API request (JSON) to an HTTP-mode app."""
        with self.store.lock:
            payload = payloads.event_callback(self.store, event)
        return self.post_signed(url, payload, content_type=JSON)
