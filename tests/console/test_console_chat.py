"""The console's listeners, screen and notifier in process: the real object graph over
the hand-written fakes (the tmux tests run the real process, Docker and Jupyter)."""

from __future__ import annotations

import inspect
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from bot.db import migrate
from bot.db.engine import Database
from bot.ports import Notifier
from handlers.console import Console, ConsoleNotifier, Screen
from handlers.console.screen import MASK
from tests.fakes.gpus import FakeInventory
from tests.fakes.services import Harness, build_harness, make_policy

ALICE, BOB = "U0ALICE001", "U0BOB00002"  # Alice is the admin


@dataclass
class Chat:
    console: Console
    screen: Screen
    out: io.StringIO
    kit: Harness
    answers: list[str]

    def say(self, line: str, *answers: str) -> str:
        """Type ``line`` (answering its questions with ``answers``); what it printed."""
        self.answers[:] = list(answers)
        start = len(self.out.getvalue())
        self.console.handle(line)
        for future in list(self.console.pending):
            future.result(timeout=10)
        assert not self.answers, f"questions not asked: {self.answers}"
        return self.out.getvalue()[start:]


@pytest.fixture(params=[(ALICE,)])
def chat(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Chat]:
    migrate.upgrade(sqlite_url)
    db = Database(sqlite_url)
    out, answers = io.StringIO(), []
    screen = Screen(out, user=ALICE)
    inventory = FakeInventory(count=2)
    notifier = ConsoleNotifier(screen, admin_channel=None, extend_by=timedelta(hours=24),
                               gpus=inventory.list_gpus, admins=request.param)
    kit = build_harness(db, notifier=notifier, inventory=inventory, extend_by=timedelta(hours=24),
                        policy=make_policy(admins=frozenset(request.param)))

    def read(question: str) -> str:
        out.write(question)
        if not answers:
            raise EOFError
        return answers.pop(0)

    console = Console(kit.gpubot.use_cases, screen, users=[ALICE, BOB], read=read)
    yield Chat(console, screen, out, kit, answers)
    console.pool.shutdown(wait=True)
    db.dispose()


def approval_for_bob(chat: Chat, text: str = "claim 5d") -> int:
    chat.say(f":user {BOB}")
    said = chat.say(text)
    assert "needs an admin's approval" in said
    chat.say(f":user {ALICE}")
    posted = chat.screen.pickable()
    assert posted is not None and posted.audience.channel == "admins"
    return posted.number


def test_the_access_dm_of_another_user_is_masked_until_they_sit_down(chat: Chat) -> None:
    approval_for_bob(chat)
    approved = chat.say("1")
    assert f"was approved by {ALICE}" in approved
    dm = next(p for p in reversed(chat.screen._posted) if p.secret)
    assert dm.audience.user == BOB and dm.masked
    assert dm.secret not in chat.out.getvalue()
    assert f"Password: {MASK}" in approved and f"`:user {BOB}` shows it" in approved
    switched = chat.say(f":user {BOB}")
    assert f"Password: {dm.secret}" in switched and "(again)" in switched
    assert chat.say(f":user {ALICE}").count(dm.secret) == 0  # nothing re-shown to Alice


def test_picks_refer_to_the_newest_message_the_user_can_see(chat: Chat) -> None:
    assert "Nothing to pick: no message with choices for U0ALICE001 is open." in chat.say("1")
    assert "There is no message 99." in chat.say("99.1")
    number = approval_for_bob(chat)
    assert f"Message {number} has choices 1–2." in chat.say("3")
    chat.say(f":user {BOB}")
    assert "Only a gpubot admin can do that." in chat.say(f"{number}.1")  # Slack's words
    chat.say(f":user {ALICE}")
    assert f"was approved by {ALICE}" in chat.say("1")
    assert f"Message {number} was replaced; its choices are gone." in chat.say(f"{number}.1")
    dm = next(p for p in reversed(chat.screen._posted) if p.secret)
    assert f"Message {dm.number} is for {BOB}; `:user {BOB}` acts as them." \
        in chat.say(f"{dm.number}.2")
    assert "Nothing to pick" in chat.say("1")  # Bob's access DM is not Alice's to pick


def test_release_asks_its_confirm_question_first(chat: Chat) -> None:
    said = chat.say("claim 1h")
    assert "Password: " in said and "[1] Extend 1d   [2] Release" in said
    lease_id = chat.kit.gpubot.use_cases.leases_of(ALICE)[0].lease.id
    kept = chat.say("2", "n")
    assert "Release this GPU? Jupyter stops." in kept and "Keep it: nothing done." in kept
    assert chat.kit.gpubot.use_cases.leases_of(ALICE)[0].lease.status.value == "active"
    released = chat.say("2", "y")
    assert f"Lease {lease_id} released. Your files stay in your workspace." in released
    assert chat.kit.gpubot.use_cases.leases_of(ALICE) == []
    extended = chat.say("claim 1h")
    assert "ends" in chat.say("1") and extended  # Extend needs no confirmation


def test_deny_asks_the_modal_fields_in_turn(chat: Chat) -> None:
    approval_for_bob(chat)
    cancelled = chat.say("2", ":cancel")
    assert "Deny lease" in cancelled and "Cancel: nothing done." in cancelled
    assert chat.kit.gpubot.use_cases.leases_of(BOB)[0].lease.status.value == "pending_approval"
    denied = chat.say("2", "", "not this week")
    assert "This one is required (or :cancel)." in denied
    assert f"was denied by {ALICE}." in denied and "Reason: not this week" in denied
    assert f"denied by {ALICE}: not this week" in denied  # Bob's DM
    assert chat.kit.gpubot.use_cases.leases_of(BOB) == []


def test_console_commands(chat: Chat) -> None:
    assert ":user U0BOB" in chat.say(":help")
    assert f"You are {ALICE} (admin). Also here: {BOB}." in chat.say(":user")
    assert "only letters and digits" in chat.say(":user bob!")
    assert "You are now UCAROL." in chat.say(":user ucarol")
    assert "I don't know `:frob`" in chat.say(":frob")
    assert "Here is what I can do:" in chat.say("/gpu")  # /gpu alone answers with help
    assert chat.console.handle(":quit") is False


def test_the_loop_ends_on_eof_and_survives_ctrl_c(chat: Chat) -> None:
    lines = iter(["status", KeyboardInterrupt, "mine"])

    def read(prompt: str) -> str:
        chat.out.write(prompt)
        item = next(lines, EOFError)
        if isinstance(item, type):
            raise item
        return item

    chat.console.read = read
    chat.console.loop(["banner line"])
    text = chat.out.getvalue()
    assert text.startswith("banner line\nU0ALICE001 (admin)> ")
    assert "GPUs free" in text and "^C  (:quit or Ctrl-D leaves)" in text
    assert "You have no open lease." in text


def test_the_console_notifier_implements_every_notification() -> None:
    wanted = {name for name, _ in inspect.getmembers(Notifier, inspect.isfunction)
              if not name.startswith("_")}
    assert wanted <= set(dir(ConsoleNotifier)), wanted - set(dir(ConsoleNotifier))


@pytest.mark.parametrize("chat", [()], indirect=True)
def test_with_no_admin_the_requester_hears_at_once_that_nobody_can_decide(chat: Chat) -> None:
    said = chat.say("claim 5d")
    assert "no admin can see the request: no gpubot admin is set" in said
    assert "--admin" in said


def test_a_withdrawn_request_loses_its_choices(chat: Chat) -> None:
    number = approval_for_bob(chat)
    pending = chat.kit.gpubot.use_cases.leases_of(BOB)[0].lease
    start = len(chat.out.getvalue())
    chat.kit.gpubot.resources.notifier.approval_withdrawn(pending)
    assert f"{BOB}'s request for a GPU for 5d (lease {pending.id}) was withdrawn." \
        in chat.out.getvalue()[start:]
    assert "was replaced" in chat.say(f"{number}.1")


def test_a_queued_claim_offers_its_leave_button(chat: Chat) -> None:
    chat.say("claim 1h")
    chat.say("claim 2h")  # both GPUs are Alice's now
    chat.say(f":user {BOB}")
    queued = chat.say("claim 1h")
    assert "#1 in the queue for 1 GPU" in queued and "[1] Leave the queue" in queued
    lease_id = chat.kit.gpubot.use_cases.leases_of(BOB)[0].lease.id
    assert f"Lease {lease_id} left the queue." in chat.say("1")
    assert chat.kit.gpubot.use_cases.leases_of(BOB) == []


def test_the_idle_warning_offers_i_am_still_using_it(chat: Chat) -> None:
    chat.say("claim 1h")
    lease = chat.kit.gpubot.use_cases.leases_of(ALICE)[0].lease
    start = len(chat.out.getvalue())
    chat.kit.gpubot.resources.notifier.idle_warning(lease, chat.kit.clock.now()
                                                     + timedelta(minutes=30))
    warning = chat.out.getvalue()[start:]
    assert f"💤 Lease {lease.id} looks idle" in warning and "[1] I'm still using it" in warning
    assert f"Lease {lease.id} is yours; idleness counts again" in chat.say("1")
    assert chat.kit.gpubot.use_cases.leases_of(ALICE)[0].lease.snoozed_until is not None
