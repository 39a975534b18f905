"""The doctor's Slack checks: the bot token, and whether the admin channel takes posts."""

from __future__ import annotations

from bot.doctor_types import CheckResult


def _slack(token: str | None, api_url: str) -> CheckResult:
    if not token:
        return CheckResult("Slack token", True, "skipped: SLACK_BOT_TOKEN is not set")
    from bot.adapters import slack_checks

    ok, detail = slack_checks.auth_test(token, api_url)
    return CheckResult("Slack token", ok, detail, "" if ok else
                       "set SLACK_BOT_TOKEN to the app's Bot User OAuth Token (xoxb-...) and "
                       "SLACK_API_URL to Slack's Web API")


def _admin_channel(token: str | None, api_url: str, channel: str | None) -> CheckResult:
    name = "Admin channel"
    if not token:
        return CheckResult(name, True, "skipped: SLACK_BOT_TOKEN is not set")
    if not channel:  # approvals are clicked there: without it nobody can ever approve
        return CheckResult(name, False, "GPUBOT_ADMIN_CHANNEL is not set: requests that need "
                           "an admin (more than one GPU, or longer than GPUBOT_APPROVAL_ABOVE) "
                           "can never be approved", "create a channel for the lab's admins, "
                           "invite the app, and set GPUBOT_ADMIN_CHANNEL to its ID (C…)")
    from bot.adapters import slack_checks

    ok, detail, fix = slack_checks.admin_channel_probe(token, api_url, channel)
    return CheckResult(name, ok, detail, fix)
