"""The Slack Notifier: what the services tell people, as DMs and admin-channel posts.

Slack failures are logged, never raised into a lease's flow: a lease that started is
not failed because a DM bounced (``/gpu password`` re-sends it). One exception: Slack's
rate limit (HTTP 429). The client waits out ``Retry-After`` and tries again, up to
``RATE_LIMIT_RETRIES`` times; a message the lifecycle *owes* (access, failure, reminder,
expiry, death, decision) that is still refused raises ``MessageDelayed``, so its effect
is not acknowledged and the reconciler sends it later. Progress updates are never owed.

The password travels only inside the access DM's blocks; the ``text`` fallback
(notifications, previews) carries the URL alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.domain.containers import ContainerState
from bot.domain.errors import MessageDelayed
from bot.domain.gpus import GpuInfo, describe_gpus
from bot.domain.lease import Lease
from bot.ports import AccessInfo
from handlers import blocks

log = logging.getLogger(__name__)

RATE_LIMIT_RETRIES = 3


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
        self._progress: dict[int, tuple[str, str]] = {}  # lease id → (channel, ts)
        self._approvals: dict[int, tuple[str, str]] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- leases
    def progress(self, lease: Lease, text: str) -> None:
        self._upsert(self._progress, lease, lease.user_id, blocks.progress_message(lease, text))

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
            extend_by=self.extend_by), owed=owed)

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

    # ------------------------------------------------------------- approvals
    def approval_requested(self, lease: Lease) -> None:
        self._post(lease.user_id, blocks.waiting_for_approval(lease))
        if self.admin_channel:
            self._upsert(self._approvals, lease, self.admin_channel,
                         blocks.approval_request(lease))
        else:
            log.warning("lease %s needs approval but GPUBOT_ADMIN_CHANNEL is not set", lease.id)

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

    # -------------------------------------------------------------- plumbing
    def _post(self, channel: str, message: Message, *, owed: bool = False
              ) -> tuple[str, str] | None:
        text, body = message
        try:
            response = self.client.chat_postMessage(channel=channel, text=text, blocks=body)
        except SlackApiError as exc:
            error = exc.response.get("error")
            log.error("Slack refused a message to %s: %s", channel, error)
            if owed and error == "ratelimited":
                raise MessageDelayed("Slack is rate-limiting gpubot right now; the message "
                                     "will be sent again in a few minutes.") from exc
            return None
        return response["channel"], response["ts"]

    def _upsert(self, registry: dict[int, tuple[str, str]], lease: Lease, channel: str,
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
        posted = self._post(channel, message, owed=owed)
        if posted is not None and not forget:
            with self._lock:
                registry[key] = posted
