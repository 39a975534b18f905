from datetime import UTC, datetime, timedelta

import pytest

from bot.domain import reminders
from bot.domain.errors import DomainError, InvalidDuration, InvalidTransition, LeaseLimitReached, NotAllowed
from bot.domain.lease import TRANSITIONS, Lease, LeaseStatus
from tests.fakes.services import make_policy

S = LeaseStatus
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
ALLOWED = {
    (S.PENDING_APPROVAL, S.STARTING), (S.PENDING_APPROVAL, S.DENIED),
    (S.PENDING_APPROVAL, S.RELEASED), (S.STARTING, S.ACTIVE), (S.STARTING, S.FAILED),
    (S.STARTING, S.RELEASED), (S.STARTING, S.EXPIRED), (S.ACTIVE, S.RELEASED),
    (S.ACTIVE, S.EXPIRED), (S.ACTIVE, S.FAILED),
    (S.PENDING_APPROVAL, S.QUEUED), (S.QUEUED, S.STARTING), (S.QUEUED, S.RELEASED),
    (S.QUEUED, S.EXPIRED),
}


@pytest.mark.parametrize("source", list(S))
@pytest.mark.parametrize("target", list(S))
def test_transitions(source: LeaseStatus, target: LeaseStatus) -> None:
    lease = Lease(user_id="U1", duration=timedelta(hours=1), created_at=NOW, status=source, id=7)
    if (source, target) in ALLOWED:
        lease.transition(target, at=NOW)
        assert lease.status is target
        assert (lease.ended_at is not None) == target.terminal
    else:
        with pytest.raises(InvalidTransition, match="Lease 7 is"):
            lease.transition(target, at=NOW)
        assert lease.status is source


def test_table_and_expectations_agree() -> None:
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED
    assert {s for s in S if s.live} == {S.STARTING, S.ACTIVE}
    assert {s for s in S if s.terminal} == {S.RELEASED, S.EXPIRED, S.DENIED, S.FAILED}


@pytest.mark.parametrize(("duration", "gpus", "approval"), [
    (timedelta(hours=24), 1, False), (timedelta(days=3), 1, False),
    (timedelta(days=3, minutes=1), 1, True), (timedelta(hours=1), 2, True),
])
def test_approval_rule(duration: timedelta, gpus: int, approval: bool) -> None:
    assert make_policy().check_claim(duration=duration, gpu_count=gpus, open_leases=0) is approval


@pytest.mark.parametrize(("kwargs", "error"), [
    (dict(duration=timedelta(minutes=5), gpu_count=1, open_leases=0), InvalidDuration),
    (dict(duration=timedelta(days=8), gpu_count=1, open_leases=0), InvalidDuration),
    (dict(duration=timedelta(hours=1), gpu_count=0, open_leases=0), DomainError),
    (dict(duration=timedelta(hours=1), gpu_count=9, open_leases=0), DomainError),
    (dict(duration=timedelta(hours=1), gpu_count=1, open_leases=2), LeaseLimitReached),
])
def make_policy_refusals(kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        make_policy().check_claim(**kwargs)


def test_admins() -> None:
    policy = make_policy()
    policy.require_admin("UADMIN1")
    with pytest.raises(NotAllowed):
        policy.require_admin("U1")


@pytest.mark.parametrize(("remaining", "sent", "send", "now_sent"), [
    (timedelta(hours=2), set(), None, set()),
    (timedelta(minutes=59), set(), timedelta(hours=1), {3600}),
    (timedelta(minutes=59), {3600}, None, {3600}),
    (timedelta(minutes=9), {3600}, timedelta(minutes=10), {3600, 600}),
    (timedelta(minutes=5), set(), timedelta(minutes=10), {3600, 600}),  # only the nearest
])
def test_reminders_fire_once(remaining, sent, send, now_sent) -> None:
    offsets = (timedelta(hours=1), timedelta(minutes=10))
    assert reminders.due(offsets, sent=sent, remaining=remaining) == (send, now_sent)


def test_reminders_rearm_after_extension() -> None:
    assert reminders.rearm({3600, 600}, remaining=timedelta(minutes=30)) == {3600}
    assert reminders.rearm({3600, 600}, remaining=timedelta(hours=5)) == set()
    assert reminders.format_sent({600, 3600}) == "3600,600"
    assert reminders.parse_sent("3600,600") == {3600, 600}
