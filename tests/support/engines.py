"""Engines a test needs but cannot reach: skipped with the reason on a laptop; under CI
(``CI=true``) the same situation is a failure, so CI can never pass by skipping."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(condition: bool, reason: str, hint: str = "") -> None:
    """Skip (laptop) or fail (CI=true) when something the test needs is missing.

    ``hint`` (how to set the missing thing up) is added to the skip reason only.
    """
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing engine is a failure, not a skip)")
    pytest.skip(f"{reason}; {hint}" if hint else reason)
