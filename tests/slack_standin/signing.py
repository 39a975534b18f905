"""HTTP mode: sign and POST requests exactly like Slack does.

Slack signs ``v0:{timestamp}:{raw body}`` with HMAC-SHA256 keyed by the app's signing
secret and sends ``X-Slack-Signature: v0=<hex>`` and ``X-Slack-Request-Timestamp``.
Slash commands are form-encoded, interactive payloads are ``payload=<json>`` form bodies,
Events API callbacks are JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` value for ``body`` sent at ``timestamp``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def encode_body(body: str | bytes | Mapping[str, Any], content_type: str) -> bytes:
    """Raw bytes of a body: mappings are form-encoded or JSON-encoded per content type."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    if content_type.startswith(JSON):
        return json.dumps(body).encode()
    fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
    return urlencode(fields).encode()


def interactive_body(payload: Mapping[str, Any]) -> bytes:
    """The form body Slack posts for interactive payloads: ``payload=<url-encoded json>``."""
    return urlencode({"payload": json.dumps(payload)}).encode()


@dataclass(frozen=True)
class SignedResponse:
    """What the app answered to a signed request."""

    status: int
    headers: dict[str, str]
    body: str
    latency: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def post_signed(url: str, body: str | bytes | Mapping[str, Any], *, secret: str,
                content_type: str = FORM, timestamp: int | str | None = None,
                headers: Mapping[str, str] | None = None, timeout: float = 10.0) -> SignedResponse:
    """POST ``body`` to ``url`` signed with ``secret``; non-2xx answers are returned, not raised."""
    raw = encode_body(body, content_type)
    ts = str(int(time.time()) if timestamp is None else timestamp)
    all_headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature(secret, ts, raw),
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        **(headers or {}),
    }
    request = urllib.request.Request(url, data=raw, headers=all_headers, method="POST")
    start = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            text = resp.read().decode()
            return SignedResponse(resp.status, dict(resp.headers), text, time.monotonic() - start)
    except urllib.error.HTTPError as err:
        text = err.read().decode()
        return SignedResponse(err.code, dict(err.headers), text, time.monotonic() - start)
