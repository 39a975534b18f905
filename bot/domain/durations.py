"""Lease durations as people type them: ``90m``, ``24h``, ``3d``, ``1w``, ``1d12h``."""

from __future__ import annotations

import re
from datetime import timedelta

from bot.domain.errors import InvalidDuration

_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1),
          "m": timedelta(minutes=1)}
_PART = re.compile(r"([0-9]{1,6})\s*([wdhm])", re.ASCII)
_WHOLE = re.compile(r"(?:[0-9]{1,6}\s*[wdhm]\s*)+", re.ASCII)
EXAMPLES = "`90m`, `24h`, `3d`, `1w` or `1d12h`"


def parse_duration(text: str) -> timedelta:
    """Parse a positive duration; case-insensitive, spaces tolerated.

    Raises InvalidDuration with a sentence that says what was wrong and shows examples.
    """
    cleaned = (text or "").strip().lower()
    if not cleaned:
        raise InvalidDuration(f"Give a duration such as {EXAMPLES}.")
    if cleaned.startswith("-"):
        raise InvalidDuration(f"A duration cannot be negative: `{shown(text)}`. "
                              f"Try {EXAMPLES}.")
    if cleaned.isascii() and cleaned.isdigit():
        raise InvalidDuration(f"`{shown(text)}` has no unit. Add m, h, d or w: {EXAMPLES}.")
    if not _WHOLE.fullmatch(cleaned):
        raise InvalidDuration(f"`{shown(text)}` is not a duration. Try {EXAMPLES}.")
    total = sum((int(n) * _UNITS[u] for n, u in _PART.findall(cleaned)), timedelta())
    if total <= timedelta(0):
        raise InvalidDuration(f"A lease must last longer than zero. Try {EXAMPLES}.")
    return total


def check_bounds(duration: timedelta, *, minimum: timedelta, maximum: timedelta) -> timedelta:
    if duration < minimum:
        raise InvalidDuration(f"{format_duration(duration)} is shorter than the minimum "
                              f"lease of {format_duration(minimum)}.")
    if duration > maximum:
        raise InvalidDuration(f"{format_duration(duration)} is longer than the maximum "
                              f"lease of {format_duration(maximum)}.")
    return duration


def format_duration(duration: timedelta) -> str:
    """Compact, largest units first: ``1d 12h``, ``45m``; under a minute: ``<1m``."""
    minutes = int(duration.total_seconds() // 60)
    if minutes <= 0:
        return "<1m"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (mins, "m")) if v]
    return " ".join(parts)


def shown(text: str, limit: int = 40) -> str:
    """Echo user input safely: short, one line, no backticks, and &, <, > escaped the
    way Slack asks, so ``<!channel>`` or ``<@U1>`` in input cannot ping anyone."""
    flat = " ".join(str(text).split()).replace("`", "'")
    flat = flat if len(flat) <= limit else flat[: limit - 1] + "…"
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
