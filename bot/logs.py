"""Logging set-up with redaction: no password, token, key or hash reaches a log line, at
any level (DESIGN §4).

Passwords themselves are never passed to a logger by gpubot. Slack's libraries are
another matter: at DEBUG, slack_sdk logs every Web API request and response body (the
access DM's blocks hold the password, and chat.postMessage echoes them back) and the
Socket Mode client logs each envelope (a click on the access DM carries the DM again).
A random password cannot be recognised by a pattern, so records of those libraries keep
their words (method URL, status, envelope type) but lose everything from the first
payload on. Then the whole line, traceback included, is redacted of what can be
recognised (tokens, Fernet ciphertexts, argon2 hashes, ``password=…`` values) and of
the exact secrets given to ``configure`` (signing secret, Fernet keys).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
_SECRETS = re.compile(
    r"xox[abposre]-[A-Za-z0-9-]+"  # Slack bot/user/refresh tokens
    r"|xapp-[A-Za-z0-9-]+"  # app-level tokens
    r"|xwfp-[A-Za-z0-9-]+"  # workflow tokens
    r"|gAAAAA[A-Za-z0-9_=-]{20,}"  # Fernet ciphertexts
    r"|\$argon2(?:id|i|d)?\$[^\s'\"]+"  # password hashes
    r"|(?<=ticket=)[^&\s'\"]+"  # the one-time ticket in a Socket Mode URL
    # a private SSH/PEM key pasted into `/gpu key add` by mistake: all of it, to its end
    r"|-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.|\n)*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)"
    r"|PuTTY-User-Key-File-(?:.|\n)*"
)
# `password=…`, `"secret": "…"`: keep the key, hide the value.
_KEYED = re.compile(r"""(?i)((?:password|passwd|secret|token)["']?\s*[:=]\s*)"""
                    r"""("[^"]*"|'[^']*'|[^\s,;&}\]]+)""")
# Libraries whose records may carry Slack payloads, and where a payload begins: a dict,
# list or JSON text (`{`, `[`) or a bytes repr (`b'`, `b"`).
PAYLOAD_LOGGERS = ("slack_sdk", "slack_bolt")
_PAYLOAD_START = re.compile(r"[{\[]|\bb['\"]")
_known: frozenset[str] = frozenset()


def redact(text: str, known: Iterable[str] = ()) -> str:
    for secret in sorted({*_known, *known}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _KEYED.sub(lambda m: m.group(1) + REDACTED, _SECRETS.sub(REDACTED, text))


def without_payloads(message: str) -> str:
    """``"Sending a request - url: …/chat.postMessage, json_body: {…}"`` → the words
    before the first payload, so a password in the payload never reaches the log."""
    match = _PAYLOAD_START.search(message)
    return message if match is None else message[: match.start()] + "… (payload not logged)"


class RedactingFormatter(logging.Formatter):
    """Strips Slack libraries' payloads, then redacts the whole formatted line,
    tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name.startswith(PAYLOAD_LOGGERS):
            # A copy: other handlers (pytest's, say) see the record unchanged.
            record = logging.makeLogRecord({**record.__dict__, "args": None,
                                            "msg": without_payloads(record.getMessage())})
        return redact(super().format(record))


def configure(level: str = "INFO", *, secrets: Iterable[str | None] = ()) -> None:
    """Log to stderr at ``level``; ``secrets`` (signing secret, Fernet keys…) are
    replaced wherever they appear, on top of the patterns above."""
    global _known
    _known = frozenset(s for s in secrets if s and len(s) >= 8)  # short: too many hits
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "docker", "apscheduler.executors", "slack_bolt.App"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
