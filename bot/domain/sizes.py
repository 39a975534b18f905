"""Docker size notation (``96g``, ``512m``, ``8gb``) to bytes."""

from __future__ import annotations

import re

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)b?", re.IGNORECASE)
_FACTOR = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a size; use docker notation such as 96g or 512m")
    number, unit = match.groups()
    size = int(float(number) * _FACTOR[unit.lower()])
    if size <= 0:
        raise ValueError("a size must be greater than zero")
    return size
