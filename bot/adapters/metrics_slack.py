"""Slack Web API errors by method, seen from inside slack_sdk's HTTP loop.

slack_sdk shows every answer (a 200 with ``"ok": false`` included), every HTTP error
and every connection failure to each of the client's retry handlers, in order, until
one asks for a retry. ``SlackErrorMeter`` sits first in that list, counts what went
wrong and never asks for a retry, so the real handlers behind it (the rate-limit one)
work as before. Bolt copies the list into the client it makes for each request, so the
listeners' calls (``views.publish``, ephemeral errors) are counted too.

Each refused *attempt* counts: a call rate-limited twice and then accepted adds 2 to
``{error="ratelimited"}``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import Counter
from slack_sdk import WebClient
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState


def api_method(url: str) -> str:
    """``https://slack.com/api/chat.postMessage`` -> ``chat.postMessage``."""
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or "unknown"


def error_of(response: HttpResponse | None, error: Exception | None) -> str | None:
    """Slack's error code, ``http_<status>``, the exception's type, or None (it worked)."""
    if response is None:
        return type(error).__name__ if error is not None else None
    body: Any = response.body
    if not body and response.data:
        try:
            body = json.loads(response.data)
        except ValueError:
            body = None
    if isinstance(body, dict) and body.get("ok") is False:
        return str(body.get("error") or "unknown_error")
    if response.status_code != 200:
        return f"http_{response.status_code}"
    return None


class SlackErrorMeter(RetryHandler):
    def __init__(self, errors: Counter) -> None:
        super().__init__(max_retry_count=0)
        self.errors = errors

    def can_retry(self, *, state: RetryState, request: HttpRequest,
                  response: HttpResponse | None = None, error: Exception | None = None
                  ) -> bool:
        code = error_of(response, error)
        if code is not None:
            self.errors.labels(method=api_method(request.url), error=code).inc()
        return False  # only looking: the handlers after this one decide on retries

    def _can_retry(self, **_: Any) -> bool:  # the interface's abstract hook
        return False


def meter_client(client: WebClient, errors: Counter) -> WebClient:
    """Put a ``SlackErrorMeter`` first in ``client``'s retry handlers (once)."""
    if not any(isinstance(h, SlackErrorMeter) for h in client.retry_handlers):
        client.retry_handlers.insert(0, SlackErrorMeter(errors))
    return client
