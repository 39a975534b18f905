"""What the log formatter hides beyond token patterns (issue 11.3)."""

from __future__ import annotations

import logging

from bot import logs


def fmt(name: str, msg: str, *args: object, level: int = logging.DEBUG) -> str:
    record = logging.LogRecord(name, level, __file__, 1, msg, args or None, None)
    return logs.RedactingFormatter("%(name)s %(message)s").format(record)


def test_slack_library_records_keep_their_words_but_lose_payloads() -> None:
    body = {"channel": "U1", "blocks": [{"text": "*Password*\n`s3cretPassw0rdXYZabc`"}]}
    line = fmt("slack_sdk.web.base_client", f"Sending a request - url: https://slack.com/api/"
                                            f"chat.postMessage, json_body: {body}")
    assert "chat.postMessage" in line and "s3cret" not in line and "not logged" in line
    warning = fmt("slack_bolt.App", "Unhandled request (%s)", body, level=logging.WARNING)
    assert "Unhandled request" in warning and "s3cret" not in warning
    assert "s3cret" not in fmt("slack_sdk.socket_mode", "Received bytes: b'%s'", "s3cret")
    assert "s3cret" in fmt("gpubot.claim", "%s", body)  # our own lines keep their data


def test_keyed_values_and_configured_secrets_are_hidden() -> None:
    line = logs.redact('password=hunter2 "secret": "abc def" token: zzz ok=1')
    assert "hunter2" not in line and "abc def" not in line and "zzz" not in line
    assert "ok=1" in line and line.count(logs.REDACTED) == 3
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure("INFO", secrets=["standin-signing-secret-0123", None, "short"])
        assert "standin-signing" not in fmt("gpubot", "secret is standin-signing-secret-0123")
        assert "short" in fmt("gpubot", "short")  # too short to hide everywhere
    finally:
        logs.configure("INFO")
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    assert "wss://x/link/?ticket=" + logs.REDACTED in logs.redact("wss://x/link/?ticket=abc-123")
