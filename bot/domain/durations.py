"""Lease durations as people type them: ``90m``, ``24h``, ``3d``, ``1w``, ``1d12h``."""

from __future__ import annotations

import re
from datetime import timedelta

from bot.domain.errors import InvalidDuration

_MINUTES = {"w": 7 * 24 * 60, "d": 24 * 60, "h": 60, "m": 1}
# No lease, setting or extension may be longer: far beyond any lab policy, and small
# enough that ``now + duration`` can never overflow datetime (year 9999).
LONGEST = timedelta(days=3660)
_TYPICAL = {"w": "1w", "d": "3d", "h": "24h", "m": "90m"}  # a lone unit letter's guess
_PART = re.compile(r"([0-9]{1,6})\s*([wdhm])", re.ASCII)
_WHOLE = re.compile(r"(?:[0-9]{1,6}\s*[wdhm]\s*)+", re.ASCII)
EXAMPLES = "`90m`, `24h`, `3d`, `1w` or `1d12h`"


def parse_duration(text: str, *, longest: timedelta | None = None) -> timedelta:
    """Parse a positive duration of at most ``LONGEST``; case-insensitive, spaces tolerated.

    Raises InvalidDuration with a sentence that says what was wrong and shows examples.
    ``longest`` (the policy's maximum lease) only words the message for an absurd value.
    """
    cleaned = (text or "").strip().lower()
    if not cleaned:
        raise InvalidDuration(f"Give a duration such as {EXAMPLES}.")
    if cleaned.startswith("-"):
        raise InvalidDuration(f"A duration cannot be negative: `{shown(text)}`. "
                              f"Try {EXAMPLES}.")
    if cleaned.isascii() and cleaned.isdigit():
        raise InvalidDuration(f"`{shown(text)}` has no unit: did you mean "
                              f"`{int(cleaned)}h`? Add m, h, d or w: {EXAMPLES}.")
    if cleaned in _TYPICAL:
        raise InvalidDuration(f"`{shown(text)}` has no number: did you mean "
                              f"`{_TYPICAL[cleaned]}`? Try {EXAMPLES}.")
    if not _WHOLE.fullmatch(cleaned):
        raise InvalidDuration(f"`{shown(text)}` is not a duration. Try {EXAMPLES}.")
    # Integer minutes first: timedelta(weeks=999999999) itself overflows.
    minutes = sum(int(n) * _MINUTES[u] for n, u in _PART.findall(cleaned))
    if minutes <= 0:
        raise InvalidDuration(f"A lease must last longer than zero. Try {EXAMPLES}.")
    if minutes > LONGEST // timedelta(minutes=1):
        most = (f"the maximum lease is {format_duration(longest)}" if longest
                else "no lease can last longer than 10 years")
        raise InvalidDuration(f"`{shown(text)}` is far too long: {most}. Try {EXAMPLES}.")
    return timedelta(minutes=minutes)


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
