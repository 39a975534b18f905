"""The `/gpu` grammar (DESIGN §4): what people type, typos included."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain.errors import DomainError, InvalidDuration
from handlers.grammar import Command, Verb, parse

H, D = timedelta(hours=1), timedelta(days=1)


def p(text: str | None) -> Command:
    return parse(text, default_duration=24 * H, max_lease=7 * D)


@pytest.mark.parametrize(("text", "expected"), [
    ("claim", Command(Verb.CLAIM, duration=24 * H)),
    ("claim 90m", Command(Verb.CLAIM, duration=timedelta(minutes=90))),
    ("CLAIM 1d 12h", Command(Verb.CLAIM, duration=36 * H)),
    ("claim 24 h", Command(Verb.CLAIM, duration=24 * H)),
    ("claim 2d 2 gpus", Command(Verb.CLAIM, duration=2 * D, gpu_count=2)),
    ("claim 2 gpus", Command(Verb.CLAIM, duration=24 * H, gpu_count=2)),
    ("claim 3gpus a100", Command(Verb.CLAIM, duration=24 * H, gpu_count=3, model="a100")),
    ("claim 24h a100", Command(Verb.CLAIM, duration=24 * H, model="a100")),
    ("claim 1d12h 2 x gpus H100", Command(Verb.CLAIM, duration=36 * H, gpu_count=2,
                                           model="H100")),
    ("claim h100", Command(Verb.CLAIM, duration=24 * H, model="h100")),
    ("extend 4h", Command(Verb.EXTEND, duration=4 * H)),
    ("extend 1d #12", Command(Verb.EXTEND, duration=D, lease_id=12)),
    ("release", Command(Verb.RELEASE)), ("release #7", Command(Verb.RELEASE, lease_id=7)),
    ("password 3", Command(Verb.PASSWORD, lease_id=3)),
    ("status", Command(Verb.STATUS)), ("mine", Command(Verb.MINE)),
    ("", Command(Verb.HELP)), (None, Command(Verb.HELP)), ("help", Command(Verb.HELP)),
])
def test_parses(text: str | None, expected: Command) -> None:
    assert p(text) == expected


def test_the_verb_is_an_enum_that_still_compares_as_text() -> None:
    cmd = p("claim 24h")
    assert cmd.verb is Verb.CLAIM and cmd.verb == "claim" and f"{cmd.verb}" == "claim"
    assert p("bogus").verb is Verb.HELP and "bogus" in (p("bogus").note or "")


@pytest.mark.parametrize(("text", "suggestion"), [
    ("claim h", "did you mean `24h`?"), ("claim H", "did you mean `24h`?"),
    ("claim d", "did you mean `3d`?"), ("claim 24", "did you mean `24h`?"),
    ("claim 2d m", "did you mean `90m`?"), ("extend h", "did you mean `24h`?"),
    ("extend 4", "did you mean `4h`?"),
])
def test_a_lone_unit_or_bare_number_is_a_duration_typo(text: str, suggestion: str) -> None:
    with pytest.raises(InvalidDuration) as err:
        p(text)
    assert suggestion in err.value.message


@pytest.mark.parametrize("text", ["extend 999999w", "claim 999999w", "claim 999999w 2 gpus",
                                  "extend 999999w 12", "claim " + "9w" * 90])
def test_absurd_durations_are_refused_before_any_arithmetic(text: str) -> None:
    with pytest.raises(InvalidDuration) as err:
        p(text)
    assert "the maximum lease is 7d" in err.value.message


@pytest.mark.parametrize(("text", "fragment"), [
    ("claim -5h", "negative"), ("claim 24h ; rm", "could not read"),
    ("extend", "how much longer"), ("release twelve", "not a lease number"),
    ("claim 9999999h", "not a duration"),
])
def test_bad_input_gets_a_clear_message(text: str, fragment: str) -> None:
    with pytest.raises(DomainError) as err:
        p(text)
    assert fragment in err.value.message


def test_max_lease_is_optional() -> None:
    assert parse("claim 2h", default_duration=H) == Command(Verb.CLAIM, duration=2 * H)
    with pytest.raises(InvalidDuration, match="far too long"):
        parse("extend 999999w", default_duration=H)
