"""Which reminder to send, exactly once per offset, re-armed after an extension.

``sent`` is the set of offsets (seconds before expiry) already covered. When several
offsets are due at once (the bot was down, or the lease is short), only the nearest one
is sent and all of them are marked, so nobody gets three reminders in a row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta


def parse_sent(text: str) -> set[int]:
    return {int(v) for v in text.split(",") if v.strip()}


def format_sent(sent: Iterable[int]) -> str:
    return ",".join(str(v) for v in sorted(set(sent), reverse=True))


def due(offsets: Iterable[timedelta], *, sent: set[int], remaining: timedelta
        ) -> tuple[timedelta | None, set[int]]:
    """(the reminder to send now or None, the new ``sent`` set)."""
    newly = [o for o in offsets if remaining <= o and int(o.total_seconds()) not in sent]
    if not newly:
        return None, sent
    return min(newly), sent | {int(o.total_seconds()) for o in newly}


def rearm(sent: set[int], *, remaining: timedelta) -> set[int]:
    """After an extension, offsets that lie ahead again may fire again."""
    return {s for s in sent if remaining <= timedelta(seconds=s)}
