"""Logging set-up with redaction: no token, key or password hash reaches a log line.

Passwords themselves are never passed to a logger; this filter is the safety net for
what third-party libraries log (request URLs, headers, payloads).
"""

from __future__ import annotations

import logging
import re

_SECRETS = re.compile(
    r"xox[abposr]-[A-Za-z0-9-]+"  # Slack bot/user/app-level tokens
    r"|xapp-[A-Za-z0-9-]+"
    r"|gAAAAA[A-Za-z0-9_=-]{20,}"  # Fernet ciphertexts
    r"|\$argon2id?\$[^\s'\"]+"  # password hashes
)


def redact(text: str) -> str:
    return _SECRETS.sub("[redacted]", text)


class RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted line, tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "docker", "apscheduler.executors", "slack_bolt.App"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
