"""Bounds before arithmetic wherever a duration is added to a time (issue 11.10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.errors import DomainError
from bot.domain.policy import Policy

H, D = timedelta(hours=1), timedelta(days=1)
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def make_policy() -> Policy:
    return Policy(min_lease=15 * timedelta(minutes=1), max_lease=7 * D, default_lease=24 * H,
                  approval_above=3 * D, max_leases_per_user=2)


@pytest.mark.parametrize("duration", [timedelta.max, 999999 * 7 * D, 8 * D, 6 * D + 1 * H])
def test_an_extension_past_the_maximum_is_a_clear_refusal_never_an_overflow(duration) -> None:
    with pytest.raises(DomainError, match="maximum"):
        make_policy().extended_expiry(started_at=START, expires_at=START + 24 * H,
                                      duration=duration)


def test_an_extension_within_the_maximum_moves_the_end() -> None:
    end = make_policy().extended_expiry(started_at=START, expires_at=START + 24 * H,
                                        duration=4 * H)
    assert end == START + 28 * H


@pytest.mark.parametrize(("name", "value"), [("GPUBOT_READY_TIMEOUT", "99999999999999s"),
                                             ("GPUBOT_MAX_LEASE", "999999w")])
def test_an_absurd_duration_setting_is_one_line_naming_it(name: str, value: str) -> None:
    from bot.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match=f"Invalid setting {name}: .*10 years"):
        load_settings(**{name: value})
