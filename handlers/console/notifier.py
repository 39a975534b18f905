"""The console's Notifier: what the services tell people, printed on the screen.

The same Block Kit as ``handlers.notifier.SlackNotifier`` sends (``handlers.blocks``):
the DMs go to their user, the approvals to the admin channel. Where Slack updates a
message in place (progress, a decided approval) the console prints the new one and
retires the old one's choices. The password is handed to the screen as the access
message's secret, so it is masked for everyone but its user.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.domain.containers import ContainerState
from bot.domain.gpus import GpuInfo, describe_gpus
from bot.domain.lease import Lease
from bot.domain.usage import UsageReport
from bot.ports import AccessInfo
from handlers import blocks, contention_blocks, notices, usage_blocks
from handlers.console.screen import Audience, Screen

Message = tuple[str, blocks.Blocks]
ADMIN_CHANNEL = "admins"  # how the admin channel is named when GPUBOT_ADMIN_CHANNEL is unset


class ConsoleNotifier:
    def __init__(self, screen: Screen, *, admin_channel: str | None, extend_by: timedelta,
                 gpus: Callable[[], list[GpuInfo]], admins: Iterable[str] = ()) -> None:
        self.screen = screen
        self.admins = frozenset(admins)  # none: nobody could decide an approval
        self.admin_channel = admin_channel or ADMIN_CHANNEL  # approvals are shown either way
        self.extend_by = extend_by
        self.gpus = gpus

    def _dm(self, user: str, message: Message, *, secret: str | None = None) -> None:
        self.screen.post(Audience(user=user), message, secret=secret)

    def _channel(self, message: Message, *, key: Any = None) -> None:
        self.screen.post(Audience(channel=self.admin_channel), message, key=key)

    # ---------------------------------------------------------------- leases
    def progress(self, lease: Lease, text: str) -> None:
        self._dm(lease.user_id, blocks.progress_message(lease, text))

    def access_ready(self, lease: Lease, access: AccessInfo) -> None:
        self._access(lease, access)

    def access_resend(self, lease: Lease, access: AccessInfo) -> None:
        self._access(lease, access)

    def _access(self, lease: Lease, access: AccessInfo) -> None:
        self._dm(lease.user_id, blocks.access_message(
            lease, url=access.url, password=access.password,
            gpus=describe_gpus(lease.gpu_uuids, self.gpus()), extend_by=self.extend_by,
            ssh=access.ssh), secret=access.password)

    def claim_failed(self, lease: Lease, reason: str) -> None:
        self._dm(lease.user_id, blocks.failed_message(lease, reason))

    def reminder(self, lease: Lease, remaining: timedelta) -> None:
        self._dm(lease.user_id, blocks.reminder_message(lease, remaining,
                                                        extend_by=self.extend_by))

    def expired(self, lease: Lease, workspace: str) -> None:
        self._dm(lease.user_id, blocks.expired_message(lease, workspace))

    def container_died(self, lease: Lease, state: ContainerState) -> None:
        self._dm(lease.user_id, blocks.died_message(lease, state))

    def queue_timed_out(self, lease: Lease) -> None:
        self._dm(lease.user_id, contention_blocks.queue_timeout_message(lease))

    def idle_warning(self, lease: Lease, reclaim_at: datetime) -> None:
        self._dm(lease.user_id, contention_blocks.idle_warning_message(lease, reclaim_at))

    def idle_reclaimed(self, lease: Lease, workspace: str) -> None:
        self._dm(lease.user_id, contention_blocks.idle_reclaimed_message(lease, workspace))

    # ------------------------------------------------------------- approvals
    def approval_requested(self, lease: Lease) -> None:
        self._channel(blocks.approval_request(lease), key=("approval", lease.id))
        if self.admins:
            self._dm(lease.user_id, blocks.waiting_for_approval(lease))
        else:  # as in Slack: say at once that no decision can come
            self._dm(lease.user_id, notices.nobody_can_approve(
                lease, "no gpubot admin is set (GPUBOT_ADMINS, or start the console with "
                       "--admin)"))

    def approval_withdrawn(self, lease: Lease) -> None:
        if self.screen.retire(("approval", lease.id)):
            self._channel(notices.withdrawn_request(lease))

    def approval_decided(self, lease: Lease, *, approved: bool, by: str,
                         reason: str | None) -> None:
        self.screen.retire(("approval", lease.id))  # Slack replaces the request message
        self._channel(blocks.approval_outcome(lease, approved=approved, by=by, reason=reason))
        self._dm(lease.user_id, blocks.decision_dm(lease, approved=approved, by=by,
                                                   reason=reason))

    def admin_alert(self, text: str) -> None:
        self._channel((text, [blocks.section(f":warning: {text}")]))

    def usage_report(self, report: UsageReport, png: bytes) -> None:
        """A terminal shows no image: the chart is written to a file, its path printed."""
        # a fresh file of our own (mkstemp), not a guessable name in a shared /tmp
        handle, name = tempfile.mkstemp(prefix=f"gpubot-usage-{report.until:%Y-%m-%d}-",
                                        suffix=".png")
        with open(handle, "wb") as out:
            out.write(png)
        path = Path(name)
        text = usage_blocks.report_comment(report)
        self._channel((text, [blocks.section(text), blocks.context(f"Chart: {path}")]))
