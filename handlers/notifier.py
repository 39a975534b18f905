"""The Slack Notifier: what the services tell people, as DMs and admin-channel posts.

Two kinds of message, two rules:

- **Owed** (access, failure, reminder, expiry, death, decision, withdrawal: the ones
  the outbox performs). A *transient* failure (Slack unreachable, a timeout, HTTP 5xx, or the rate
  limit still refusing after the client waited out ``Retry-After`` ``RATE_LIMIT_RETRIES``
  times) raises ``MessageDelayed``: the effect is not acknowledged and the reconciler
  sends it again after ``effect_retry_after``. A permanent refusal (say, a deleted
  user) is logged; repeating it would not help.
- **Best effort** (progress, re-sent access, admin alerts): never raises. ``progress``
  runs inside the container start (the runtime's ``on_progress``), where a Slack outage
  must not fail Docker's work (issue 11.6).

Approval requests go to the admin channel; when no admin can see one (no channel, or
one the bot cannot post in) its holder is told at once. A withdrawn request's message
loses its buttons, and the same person's next request reuses it (the flood rule, in
``_show_request``). Message references live in bounded maps (``notices.Bounded``).

The password travels only inside the access DM's blocks; the ``text`` fallback
(notifications, previews) carries the URL alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from http.client import HTTPException
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.domain.containers import ContainerState
from bot.domain.errors import MessageDelayed
from bot.domain.gpus import GpuInfo, describe_gpus
from bot.domain.lease import Lease
from bot.domain.usage import UsageReport
from bot.ports import AccessInfo
from handlers import blocks, contention_blocks, notices
from handlers.notices import Bounded
from handlers.report import upload_report

log = logging.getLogger(__name__)

RATE_LIMIT_RETRIES = 3
MESSAGES_KEPT = 2000  # message references per map: far more than a lab's open leases
REUSE_WITHDRAWN_WITHIN = 3600.0  # seconds: the flood rule (SlackNotifier._show_request)
WITHDRAWN_KEPT = 4  # per person
# Slack answered with one of these (or HTTP 5xx): worth trying again later.
TRANSIENT_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error",
                              "service_unavailable", "request_timeout"})
# Slack did not answer at all: refused or cut connections, timeouts, broken responses.
# (SlackApiError, a refusal, is a SlackClientError too: it is handled before these.)
UNREACHABLE = (SlackClientError, OSError, HTTPException)


def web_client(token: str | None, base_url: str, *,
               rate_limit_retries: int = RATE_LIMIT_RETRIES) -> WebClient:
    """The bot's Web API client: connection errors retried (slack_sdk's default), and
    HTTP 429 waited out for ``Retry-After`` seconds, ``rate_limit_retries`` times."""
    client = WebClient(token=token, base_url=base_url)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=rate_limit_retries))
    return client


Message = tuple[str, list[dict[str, Any]]]


class SlackNotifier:
    def __init__(self, client: WebClient, *, admin_channel: str | None, extend_by: timedelta,
                 gpus: Callable[[], list[GpuInfo]]) -> None:
        self.client = client
        self.admin_channel = admin_channel
        self.extend_by = extend_by
        self.gpus = gpus  # the live inventory, to name a lease's GPUs
        # lease id → (channel, ts) of its message; bounded, see notices.Bounded
        self._progress: Bounded[int, tuple[str, str]] = Bounded(MESSAGES_KEPT)
        self._approvals: Bounded[int, tuple[str, str]] = Bounded(MESSAGES_KEPT)
        # user → admin messages of their withdrawn requests: (channel, ts, monotonic time)
        self._withdrawn: Bounded[str, list[tuple[str, str, float]]] = Bounded(MESSAGES_KEPT)
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- leases
    def progress(self, lease: Lease, text: str) -> None:
        """Best effort: never raises (see the module docstring)."""
        try:
            self._upsert(self._progress, lease, lease.user_id,
                         blocks.progress_message(lease, text))
        except Exception:  # noqa: BLE001 - a lost progress line harms nobody
            log.warning("lease %s: progress message not sent", lease.id, exc_info=True)

    def access_ready(self, lease: Lease, access: AccessInfo) -> None:
        self._upsert(self._progress, lease, lease.user_id,
                     blocks.progress_message(lease, "Ready: your access details are below."),
                     forget=True)
        self._access(lease, access, owed=True)

    def access_resend(self, lease: Lease, access: AccessInfo) -> None:
        self._access(lease, access, owed=False)

    def _access(self, lease: Lease, access: AccessInfo, *, owed: bool) -> None:
        self._post(lease.user_id, blocks.access_message(
            lease, url=access.url, password=access.password,
            gpus=describe_gpus(lease.gpu_uuids, self.gpus()),
            extend_by=self.extend_by, ssh=access.ssh), owed=owed)

    def claim_failed(self, lease: Lease, reason: str) -> None:
        self._upsert(self._progress, lease, lease.user_id, blocks.failed_message(lease, reason),
                     forget=True, owed=True)

    def reminder(self, lease: Lease, remaining: timedelta) -> None:
        self._post(lease.user_id, blocks.reminder_message(lease, remaining,
                                                          extend_by=self.extend_by), owed=True)

    def expired(self, lease: Lease, workspace: str) -> None:
        self._post(lease.user_id, blocks.expired_message(lease, workspace), owed=True)

    def container_died(self, lease: Lease, state: ContainerState) -> None:
        self._post(lease.user_id, blocks.died_message(lease, state), owed=True)

    def queue_timed_out(self, lease: Lease) -> None:
        self._post(lease.user_id, contention_blocks.queue_timeout_message(lease), owed=True)

    def idle_warning(self, lease: Lease, reclaim_at: datetime) -> None:
        self._post(lease.user_id, contention_blocks.idle_warning_message(lease, reclaim_at), owed=True)

    def idle_reclaimed(self, lease: Lease, workspace: str) -> None:
        self._post(lease.user_id, contention_blocks.idle_reclaimed_message(lease, workspace), owed=True)

    # ------------------------------------------------------------- approvals
    def approval_requested(self, lease: Lease) -> None:
        """Show the request to the admins; if they cannot see it, tell its holder at once
        rather than leave them waiting for a decision that cannot come."""
        problem = self._show_request(lease)
        if problem is None:
            self._post(lease.user_id, blocks.waiting_for_approval(lease))
            return
        log.warning("lease %s needs approval, but %s", lease.id, problem)
        self._post(lease.user_id, notices.nobody_can_approve(lease, problem))

    def _show_request(self, lease: Lease) -> str | None:
        """None once the admins have the request, else why they do not.

        Flood rule: a request reuses (``chat.update``) the message of a request by the
        same person withdrawn less than ``REUSE_WITHDRAWN_WITHIN`` ago instead of posting
        a new one; so claim-then-release loops edit at most ``max_leases_per_user``
        messages per person and post nothing new."""
        if not self.admin_channel:
            return "no admin channel is set up (GPUBOT_ADMIN_CHANNEL)"
        text, body = blocks.approval_request(lease)
        reusable = self._take_withdrawn(lease.user_id)
        try:
            if reusable is not None:
                try:
                    self.client.chat_update(channel=reusable[0], ts=reusable[1], text=text,
                                            blocks=body)
                    self.remember_approval_message(lease.id or 0, *reusable)
                    return None
                except SlackApiError:  # deleted meanwhile, say: post a new one
                    pass
            posted = self.client.chat_postMessage(channel=self.admin_channel, text=text,
                                                  blocks=body)
        except SlackApiError as exc:
            return f"gpubot cannot post in the admin channel ({exc.response.get('error')})"
        except UNREACHABLE:
            return "Slack could not be reached"
        self.remember_approval_message(lease.id or 0, posted["channel"], posted["ts"])
        return None

    def approval_withdrawn(self, lease: Lease) -> None:
        """Its holder released a pending request: the admin message loses its buttons
        and says so (owed: a transient failure raises, and the outbox retries)."""
        key = lease.id or 0
        with self._lock:
            known = self._approvals.get(key)
        if known is None:  # posted by an earlier process: its buttons now say "decided"
            return
        text, body = notices.withdrawn_request(lease)
        try:
            self.client.chat_update(channel=known[0], ts=known[1], text=text, blocks=body)
        except SlackApiError as exc:
            error = exc.response.get("error")
            log.warning("could not mark request %s withdrawn: %s", lease.id, error)
            if error in TRANSIENT_ERRORS or exc.response.status_code >= 500:
                raise MessageDelayed("Slack refused the update; it is retried.") from exc
        except UNREACHABLE as exc:
            self._unreachable(known[0], exc, owed=True)
        with self._lock:
            self._approvals.pop(key)
            kept = [m for m in self._withdrawn.get(lease.user_id) or []
                    if time.monotonic() - m[2] < REUSE_WITHDRAWN_WITHIN]
            self._withdrawn[lease.user_id] = [*kept[-(WITHDRAWN_KEPT - 1):],
                                              (known[0], known[1], time.monotonic())]

    def _take_withdrawn(self, user_id: str) -> tuple[str, str] | None:
        with self._lock:
            kept = [m for m in self._withdrawn.pop(user_id) or []
                    if time.monotonic() - m[2] < REUSE_WITHDRAWN_WITHIN]
            if not kept:
                return None
            channel, ts, _ = kept.pop()
            if kept:
                self._withdrawn[user_id] = kept
            return channel, ts

    def approval_decided(self, lease: Lease, *, approved: bool, by: str,
                         reason: str | None) -> None:
        if self.admin_channel:
            self._upsert(self._approvals, lease, self.admin_channel, blocks.approval_outcome(
                lease, approved=approved, by=by, reason=reason), forget=True)
        self._post(lease.user_id, blocks.decision_dm(lease, approved=approved, by=by,
                                                     reason=reason), owed=True)

    def remember_approval_message(self, lease_id: int, channel: str, ts: str) -> None:
        with self._lock:
            self._approvals[lease_id] = (channel, ts)

    def admin_alert(self, text: str) -> None:
        if self.admin_channel:
            self._post(self.admin_channel, (text, [blocks.section(f":warning: {text}")]))

    def usage_report(self, report: UsageReport, png: bytes) -> None:
        """The chart to the admin channel (``handlers.report``: Slack's external upload)."""
        upload_report(self.client, self.admin_channel, report, png)

    # -------------------------------------------------------------- plumbing
    def _post(self, channel: str, message: Message, *, owed: bool = False
              ) -> tuple[str, str] | None:
        text, body = message
        try:
            response = self.client.chat_postMessage(channel=channel, text=text, blocks=body)
        except SlackApiError as exc:
            error = exc.response.get("error")
            log.error("Slack refused a message to %s: %s", channel, error)
            if owed and (error in TRANSIENT_ERRORS or exc.response.status_code >= 500):
                raise MessageDelayed("Slack is rate-limiting gpubot right now; the message "
                                     "will be sent again in a few minutes.") from exc
            return None
        except UNREACHABLE as exc:
            self._unreachable(channel, exc, owed=owed)
            return None
        return response["channel"], response["ts"]

    @staticmethod
    def _unreachable(channel: str, exc: BaseException, *, owed: bool) -> None:
        log.error("Slack could not be reached for a message to %s: %s: %s", channel,
                  type(exc).__name__, exc)
        if owed:
            raise MessageDelayed("Slack cannot be reached right now; the message will be "
                                 "sent again in a few minutes.") from exc

    def _upsert(self, registry: Bounded[int, tuple[str, str]], lease: Lease, channel: str,
                message: Message, *, forget: bool = False, owed: bool = False) -> None:
        """Update the lease's message in ``registry`` if there is one, else post it."""
        key = lease.id or 0
        with self._lock:
            known = registry.pop(key, None) if forget else registry.get(key)
        if known is not None:
            text, body = message
            try:
                self.client.chat_update(channel=known[0], ts=known[1], text=text, blocks=body)
                return
            except SlackApiError as exc:
                log.warning("could not update message %s: %s", known[1],
                            exc.response.get("error"))
            except UNREACHABLE as exc:  # a post would fail the same way: do not wait twice
                self._unreachable(channel, exc, owed=owed)
                return
        posted = self._post(channel, message, owed=owed)
        if posted is not None and not forget:
            with self._lock:
                registry[key] = posted
