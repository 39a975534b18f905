"""Slack probes for ``gpubot doctor`` and start-up: is the bot token valid at this Web API
URL, and can the bot post in the admin channel?"""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

PROBE_TEXT = "gpubot checks that it can post approval requests here (deleted at once)."
# chat.postMessage's answers that mean "fix the channel", with what to do
CHANNEL_FIXES = {
    "not_in_channel": "invite the app to the channel (`/invite @gpubot` in it)",
    "channel_not_found": "set GPUBOT_ADMIN_CHANNEL to the channel's ID (C…, from its "
                         "details), and invite the app to it if it is private",
    "is_archived": "unarchive the channel, or set GPUBOT_ADMIN_CHANNEL to another one",
    "restricted_action": "let apps post in the channel (its posting permissions)",
    "missing_scope": "add the chat:write scope to the app and reinstall it",
    "invalid_auth": "fix the 'Slack token' check first",
    "not_authed": "fix the 'Slack token' check first",
}


def _client(token: str, api_url: str, timeout: int) -> tuple[WebClient, str]:
    base = api_url if api_url.endswith("/") else api_url + "/"
    return WebClient(token=token, base_url=base, timeout=timeout), base


def auth_test(token: str, api_url: str, *, timeout: int = 10) -> tuple[bool, str]:
    """``auth.test`` with ``token`` against ``api_url``: (ok, detail for people). The
    token itself never appears in the detail."""
    client, base = _client(token, api_url, timeout)
    try:
        answer = client.auth_test()
    except SlackApiError as exc:
        return False, f"{base} refused the token: {exc.response.get('error', 'unknown error')}"
    except (SlackClientError, OSError) as exc:
        return False, f"cannot reach {base}: {type(exc).__name__}: {exc}".replace(token, "xoxb-…")
    return True, (f"valid at {base}: team {answer.get('team')!r}, bot user "
                  f"{answer.get('user')!r} ({answer.get('user_id')})")


def admin_channel_probe(token: str, api_url: str, channel: str, *, timeout: int = 10
                        ) -> tuple[bool, str, str]:
    """Post a line in ``channel`` and delete it: the one way to know the bot may post
    there (``conversations.info`` says whether it is a member, but a public channel
    takes posts from non-members with chat:write.public, and archived or
    posting-restricted channels refuse members). (ok, detail, fix)."""
    client, base = _client(token, api_url, timeout)
    try:
        posted = client.chat_postMessage(channel=channel, text=PROBE_TEXT)
    except SlackApiError as exc:
        error = str(exc.response.get("error", "unknown error"))
        return False, f"gpubot cannot post in {channel}: {error}", CHANNEL_FIXES.get(
            error, f"see Slack's chat.postMessage error {error!r}")
    except (SlackClientError, OSError) as exc:
        return False, (f"cannot reach {base}: {type(exc).__name__}: {exc}"
                       .replace(token, "xoxb-…")), "fix the 'Slack token' check first"
    try:
        client.chat_delete(channel=posted["channel"], ts=posted["ts"])
    except (SlackClientError, OSError):  # posting works, which is what matters
        pass
    return True, f"{channel}: gpubot can post approval requests there", ""
