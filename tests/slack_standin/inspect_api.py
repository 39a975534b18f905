"""Read side of ``SlackStandIn``: what the app did, as copies taken under the store lock."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .records import Call, Envelope, Ephemeral, FileRecord, Message, ViewRecord
from .store import Store

T = TypeVar("T")


class InspectMixin:
    """Assertion helpers; expects ``self.store``."""

    store: Store

    def messages(self, channel: str | None = None, *,
                 include_deleted: bool = False) -> list[Message]:
        """Messages (latest state after chat.update/replace_original), oldest first.
        ``channel`` may be a channel id, a #name or a user id (meaning the app DM)."""
        with self.store.lock:
            cid = None if channel is None else self._channel_id(channel)
            out = [m for m in self.store.messages.values()
                   if (cid is None or m.channel == cid) and (include_deleted or not m.deleted)]
            return copy.deepcopy(sorted(out, key=lambda m: float(m.ts)))

    def message(self, channel: str, ts: str) -> Message:
        """One message by channel and ts (KeyError if unknown)."""
        with self.store.lock:
            return copy.deepcopy(self.store.messages[(self._channel_id(channel), ts)])

    def dms(self, user: str) -> list[Message]:
        """Messages in the app's DM with ``user`` (however the app opened it)."""
        with self.store.lock:
            im = self.store.im_of(user)
            return [] if im is None else self.messages(im)

    def ephemerals(self, user: str | None = None, channel: str | None = None, *,
                   include_deleted: bool = False) -> list[Ephemeral]:
        """Ephemeral messages (chat.postEphemeral, response_url, slash-command acks)."""
        with self.store.lock:
            cid = None if channel is None else self._channel_id(channel)
            return copy.deepcopy([e for e in self.store.ephemerals
                                  if (user is None or e.user == user)
                                  and (cid is None or e.channel == cid)
                                  and (include_deleted or not e.deleted)])

    def home_view(self, user: str) -> dict[str, Any] | None:
        """The home tab view published for ``user``, or None."""
        with self.store.lock:
            rec = self.store.views.get(self.store.home_views.get(user, ""))
            return None if rec is None else copy.deepcopy(rec.view)

    def open_views(self, user: str | None = None) -> list[dict[str, Any]]:
        """Open modal views (each user's stack bottom to top)."""
        with self.store.lock:
            return copy.deepcopy([self.store.views[v].view
                                  for u, stack in self.store.modal_stacks.items()
                                  if user is None or u == user for v in stack])

    def view(self, view_id: str) -> ViewRecord:
        """Any view ever opened or published, with its history."""
        with self.store.lock:
            return copy.deepcopy(self.store.views[view_id])

    def files(self, channel: str | None = None) -> list[FileRecord]:
        """Files of the external upload flow (bytes in ``data``), oldest first; with
        ``channel``, those shared there."""
        with self.store.lock:
            cid = None if channel is None else self._channel_id(channel)
            return copy.deepcopy([f for f in self.store.files.values()
                                  if cid is None or cid in f.channels])

    def calls(self, method: str | None = None) -> list[Call]:
        """Recorded Web API calls, optionally of one method."""
        with self.store.lock:
            return [c for c in self.store.calls if method is None or c.method == method]

    def api_errors(self) -> list[Call]:
        """Calls Slack answered with ``ok: false``."""
        return [c for c in self.calls() if not c.ok]

    def response_url_posts(self) -> list[dict[str, Any]]:
        """Every POST to any response_url: url, user, channel, body, error."""
        with self.store.lock:
            return copy.deepcopy([{"url": r.url, "user": r.user, "channel": r.channel, **p}
                                  for r in self.store.response_urls.values() for p in r.posts])

    def envelopes(self) -> list[Envelope]:
        """Socket Mode envelopes sent so far (live records: ack fields fill in later)."""
        with self.store.lock:
            return list(self.store.envelopes.values())

    def ack_latencies(self) -> dict[str, float | None]:
        """Seconds from send to ack per envelope_id (None: not acked)."""
        return {e.envelope_id: e.latency for e in self.envelopes()}

    def assert_acks_within(self, seconds: float = 3.0) -> None:
        """Fail unless every envelope was acked within ``seconds``."""
        late = {e.envelope_id: (e.type, e.latency) for e in self.envelopes()
                if e.latency is None or e.latency > seconds}
        assert not late, f"envelopes not acked within {seconds}s: {late}"

    def problems(self) -> list[str]:
        """Things Slack would have refused or flagged outside an API error answer: late or
        duplicate acks, invalid ack payloads, 6th response_url use, truncated messages."""
        with self.store.lock:
            return list(self.store.problems)

    def assert_no_problems(self, *, allow_api_errors: bool = False) -> None:
        """Fail on any recorded problem (and, unless allowed, any failed API call)."""
        problems = self.problems()
        if not allow_api_errors:
            problems += [f"{c.method} -> {c.error} {c.response.get('response_metadata', '')}"
                         for c in self.api_errors()]
        assert not problems, "Slack stand-in saw problems:\n" + "\n".join(problems)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0,
                 interval: float = 0.02, message: str = "") -> T:
        """Poll ``predicate`` until it returns something truthy; return that value."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(message or f"condition not met within {timeout}s")
            time.sleep(interval)

    def _channel_id(self, channel: str) -> str:
        with self.store.lock:
            if channel in self.store.users:
                return self.store.im_of(channel) or f"<no DM with {channel}>"
            try:
                return self.store.resolve_channel(channel, user_ids_open_dm=False).id
            except Exception:
                return channel
