from datetime import timedelta

import pytest

from bot.domain.durations import check_bounds, format_duration, parse_duration
from bot.domain.errors import InvalidDuration

H, M, D = timedelta(hours=1), timedelta(minutes=1), timedelta(days=1)


@pytest.mark.parametrize(("text", "expected"), [
    ("90m", 90 * M), ("24h", 24 * H), ("3d", 3 * D), ("1w", 7 * D), ("1d12h", 36 * H),
    ("1D12H", 36 * H), (" 1d 12h ", 36 * H), ("2h30m", 150 * M), ("1w1d", 8 * D),
    ("15M", 15 * M), ("1 h", H),
])
def test_parses(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("text", "fragment"), [
    ("0h", "longer than zero"), ("0m0h", "longer than zero"), ("-5h", "negative"),
    ("banana", "not a duration"), ("24", "did you mean `24h`?"), ("", "Give a duration"),
    ("   ", "Give a duration"), ("5x", "not a duration"), ("h", "did you mean `24h`?"),
    ("D", "did you mean `3d`?"), ("999999w", "far too long"), ("999w" * 10, "10 years"),
    ("1.5h", "not a duration"), ("24h; rm -rf /", "not a duration"), ("１h", "not a duration"),
    ("9999999h", "not a duration"),
])
def test_rejects_with_a_clear_message(text: str, fragment: str) -> None:
    with pytest.raises(InvalidDuration) as err:
        parse_duration(text)
    assert fragment in err.value.message
    assert "90m" in err.value.message or "24h" in err.value.message


def test_the_longest_duration_still_fits_any_datetime_arithmetic() -> None:
    from datetime import UTC, datetime

    from bot.domain.durations import LONGEST

    assert parse_duration("522w") == 522 * 7 * D <= LONGEST  # ~10 years is still read
    assert datetime(2200, 1, 1, tzinfo=UTC) + LONGEST > datetime(2200, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidDuration, match="far too long: the maximum lease is 7d"):
        parse_duration("999999w", longest=7 * D)


def test_echo_of_bad_input_is_short_and_cannot_break_markup() -> None:
    with pytest.raises(InvalidDuration) as err:
        parse_duration("`" * 500 + "\n<!channel>")
    assert len(err.value.message) < 200 and "\n" not in err.value.message


@pytest.mark.parametrize(("value", "fragment"), [(10 * M, "shorter than the minimum"),
                                                 (8 * D, "longer than the maximum")])
def test_bounds(value: timedelta, fragment: str) -> None:
    with pytest.raises(InvalidDuration, match=fragment):
        check_bounds(value, minimum=15 * M, maximum=7 * D)
    assert check_bounds(15 * M, minimum=15 * M, maximum=7 * D) == 15 * M


@pytest.mark.parametrize(("value", "text"), [(36 * H, "1d 12h"), (45 * M, "45m"),
                                             (timedelta(seconds=30), "<1m"), (7 * D, "7d")])
def test_format(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
