"""The usage report in Slack (issue 12.4): the chart goes to the admin channel through
Slack's external upload flow, which ``WebClient.files_upload_v2`` performs:
``files.getUploadURLExternal`` (name and length) → a POST of the bytes to the URL it
returns → ``files.completeUploadExternal`` sharing the file in the channel with the
report's comment. The older ``files.upload`` is retired by Slack.

``SlackNames`` gives the chart people's names instead of their ids (``users.info``,
cached; the id if Slack does not say).
"""

from __future__ import annotations

import logging
import threading

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.domain.errors import DomainError
from bot.domain.usage import UsageReport
from handlers import usage_blocks

log = logging.getLogger(__name__)
NAMES_KEPT = 1000


def upload_report(client: WebClient, channel: str | None, report: UsageReport,
                  png: bytes) -> None:
    """Share the chart in ``channel`` with the report's comment; DomainError (one
    sentence an admin can act on) when it cannot arrive."""
    if not channel:
        raise DomainError("No admin channel is set (GPUBOT_ADMIN_CHANNEL), so the usage "
                          "report has nowhere to go.")
    try:
        client.files_upload_v2(
            channel=channel, file=png, filename=f"gpu-usage-{report.until:%Y-%m-%d}.png",
            title=usage_blocks.report_title(report),
            alt_txt=usage_blocks.report_alt_text(report),
            initial_comment=usage_blocks.report_comment(report))
    except SlackApiError as exc:
        error = exc.response.get("error")
        log.error("usage report not shared in %s: %s", channel, error)
        raise DomainError(f"Slack refused the usage report for the admin channel ({error}). "
                          f"Is gpubot a member there, with the files:write scope?") from exc
    except (SlackClientError, OSError) as exc:  # unreachable, or the upload POST failed
        log.error("usage report not uploaded: %s: %s", type(exc).__name__, exc)
        raise DomainError("Slack could not be reached for the usage report; "
                          "`/gpu report` tries again.") from exc


class SlackNames:
    """user id → the name Slack shows (display name, else real name), for the chart."""

    def __init__(self, client: WebClient) -> None:
        self.client = client
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, user_id: str) -> str:
        with self._lock:
            if user_id in self._known:
                return self._known[user_id]
        try:
            user = self.client.users_info(user=user_id)["user"]
            profile = user.get("profile") or {}
            name = (profile.get("display_name") or profile.get("real_name")
                    or user.get("name") or user_id)
        except (SlackClientError, OSError, KeyError, TypeError):  # a chart with an id is fine
            log.info("no name for %s in the usage chart; its id is shown", user_id)
            return user_id
        with self._lock:
            if len(self._known) >= NAMES_KEPT:
                self._known.clear()
            self._known[user_id] = name
        return name
