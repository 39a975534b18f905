"""Slack probe for ``gpubot doctor``: is the bot token valid at this Web API URL?"""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError


def auth_test(token: str, api_url: str, *, timeout: int = 10) -> tuple[bool, str]:
    """``auth.test`` with ``token`` against ``api_url``: (ok, detail for people). The
    token itself never appears in the detail."""
    base = api_url if api_url.endswith("/") else api_url + "/"
    client = WebClient(token=token, base_url=base, timeout=timeout)
    try:
        answer = client.auth_test()
    except SlackApiError as exc:
        return False, f"{base} refused the token: {exc.response.get('error', 'unknown error')}"
    except (SlackClientError, OSError) as exc:
        return False, f"cannot reach {base}: {type(exc).__name__}: {exc}".replace(token, "xoxb-…")
    return True, (f"valid at {base}: team {answer.get('team')!r}, bot user "
                  f"{answer.get('user')!r} ({answer.get('user_id')})")
