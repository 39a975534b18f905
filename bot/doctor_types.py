"""What every doctor check returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""  # one line an admin can act on


DatabaseCheck = Callable[[], tuple[bool, str]]
