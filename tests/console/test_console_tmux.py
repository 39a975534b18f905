"""`gpubot console` in a real terminal (tmux) against the tests' real Docker engine:
real containers, real Jupyter, SQLite, synthetic GPUs."""

from __future__ import annotations

import re
import signal

import pytest

from bot.db import migrate
from bot.db.engine import Database
from handlers import commands
from handlers.console.render import render
from handlers.console.screen import MASK
from handlers.errors import report
from handlers.grammar import HELP_EXAMPLES
from tests.console.conftest import ALICE, BOB, PROMPT, RunningConsole
from tests.fakes.services import build_harness
from tests.support import jupyter

pytestmark = [pytest.mark.e2e, pytest.mark.docker]
READY = 150.0  # a container start and Jupyter answering, on a busy machine


def say(console: RunningConsole, text: str) -> int:
    """Type a line; the screen offset from which its answers appear."""
    mark = len(console.term.screen().rstrip())
    console.term.type(text)
    return mark


def ours(docker_client, console: RunningConsole) -> list:
    return docker_client.containers.list(all=True, ignore_removed=True,
                                         filters={"label": f"gpubot.host={console.host}"})


def access(console: RunningConsole, user: str, after: int) -> tuple[str, str]:
    """The URL and password of the next access message to ``user`` shown in full."""
    found = console.term.wait_for(
        rf"── DM to {user} \(you\)[^\n]*\n✅ Your Jupyter[^\n]*\nURL: (http://127\.0\.0\.1:"
        r"\d+/lab)\nPassword: (\S+)", after=after, timeout=READY)
    assert isinstance(found, re.Match)
    return found.group(1), found.group(2)


def wait_gone(docker_client, console: RunningConsole, timeout: float = 30) -> None:
    console.term.wait_for(lambda _: not ours(docker_client, console), timeout=timeout)


def test_help_claim_login_release_history_and_ctrl_d(run_console, docker_client) -> None:
    console = run_console("--user", ALICE)
    term = console.term
    assert "SYNTHETIC GPUs: 2 made-up GPUs (GPUBOT_FAKE_GPUS=2)" in term.screen()
    mark = say(console, "/gpu help")
    term.wait_for(r"Here is what I can do:", after=mark)
    for command, _ in HELP_EXAMPLES:
        term.wait_for(re.escape(command) + "  ", after=mark)

    mark = say(console, "claim 1h")
    term.wait_for(r"Lease \d+ granted for 1h", after=mark)
    url, password = access(console, ALICE, mark)
    term.wait_for(r"\[1\] Extend 1d   \[2\] Release\nOpen Jupyter: http://", after=mark)
    base = url.removesuffix("/lab")
    assert jupyter.logs_in(base, password)
    assert not jupyter.logs_in(base, password + "x")
    [container] = ours(docker_client, console)
    lease_id = console.first_lease
    assert container.name == f"gpubot-{lease_id}"
    assert container.labels["gpubot.user"] == ALICE

    # the scheduler runs in the console: a 1h lease is due its 1h reminder at once
    term.wait_for(rf"⏰ Lease {lease_id} ends in \d+m\. Save your work, or extend it\.\n"
                  r"\[1\] Extend 1d   \[2\] Release", after=mark)
    mark = say(console, "2")  # Release, the access message's second button
    term.wait_for(r"Release this GPU\? Jupyter stops\.", after=mark)
    mark = say(console, "y")
    term.wait_for(rf"Lease {lease_id} released\. Your files stay in your workspace\.",
                  after=mark)
    wait_gone(docker_client, console)
    assert (console.workdir / "ws" / ALICE).is_dir(), "the workspace stays"

    mark = say(console, "status")
    term.wait_for(r"2 of 2 GPUs free", after=mark)
    mark = len(term.screen().rstrip())
    term.keys("Up")  # readline history: the last line again
    term.keys("Enter")
    term.wait_for(r"status\n── only to [\s\S]*2 of 2 GPUs free", after=mark)

    term.keys("C-d")
    assert term.wait_exit() == 0
    assert "Scheduler stopped." in term.screen()
    assert password not in console.log_text
    history = (console.workdir / ".gpubot_history").read_text()
    assert "claim 1h" in history and "\ny\n" not in f"\n{history}\n"  # answers stay out


def test_admin_approves_and_denies_with_the_modal(run_console, docker_client) -> None:
    console = run_console("--user", ALICE, "--user", BOB, "--admin")
    term = console.term
    term.wait_for(rf"{ALICE} \(admin\)>")
    mark = say(console, f":user {BOB}")
    term.wait_for(rf"You are now {BOB}\.", after=mark)
    mark = say(console, "claim 5d")
    term.wait_for(r"needs an admin's approval", after=mark)
    term.wait_for(r"── #admins \(admin channel\) · message \d+[^\n]*\n🙋 " + BOB
                  + r" asks for a GPU for 5d \(lease \d+\)\.\n\[1\] Approve   \[2\] Deny",
                  after=mark)
    mark = say(console, "1")  # Bob is no admin: refused in Slack's words
    term.wait_for(r"Only a gpubot admin can do that\.", after=mark)

    mark = say(console, f":user {ALICE}")
    term.wait_for(rf"You are now {ALICE} \(admin\)\.", after=mark)
    mark = say(console, "1")  # Approve
    term.wait_for(rf"was approved by {ALICE}", after=mark)
    masked = term.wait_for(rf"── DM to {BOB} [^(\n]*\n✅ Your Jupyter[^\n]*\nURL: (\S+)\n"
                           rf"Password: (\S+)", after=mark, timeout=READY)
    assert isinstance(masked, re.Match) and masked.group(2) == MASK
    term.wait_for(rf"the password is for {BOB} only: `:user {BOB}` shows it", after=mark)

    before = term.screen()
    mark = say(console, f":user {BOB}")
    url, password = access(console, BOB, mark)
    assert password != MASK and password not in before  # shown only once Bob sits down
    assert jupyter.logs_in(url.removesuffix("/lab"), password)
    [container] = ours(docker_client, console)
    assert container.labels["gpubot.user"] == BOB

    mark = say(console, "claim 1h 2 gpus")
    term.wait_for(r"needs an admin's approval", after=mark)
    say(console, f":user {ALICE}")
    mark = say(console, "2")  # Deny: its modal asks the reason
    term.wait_for(r"── Deny lease \d+ ──", after=mark)
    term.wait_for(r"Reason \(sent to the requester\): $", after=mark)
    mark = say(console, "not this week")
    term.wait_for(rf"was denied by {ALICE}\.\n  Reason: not this week", after=mark)
    term.wait_for(rf"── DM to {BOB} ─+\nYour request \(lease \d+\) was denied by {ALICE}: "
                  r"not this week", after=mark)
    assert sorted(console.leases().values()).count("denied") == 1
    term.keys("C-d")
    assert term.wait_exit() == 0
    assert password not in console.log_text


def slack_answers(texts: list[str], sqlite_url: str, user: str) -> dict[str, str]:
    """What the Slack side answers each text with (``commands.handle`` and ``report``,
    as its listener runs them), rendered as the console shows it."""
    migrate.upgrade(sqlite_url)
    db = Database(sqlite_url)
    bot = build_harness(db).gpubot.use_cases
    answers: dict[str, str] = {}
    for text in texts:
        said: list[str] = []

        def respond(text: str = "", blocks: object = None, **_: object) -> None:
            said.append(render(text, blocks).text)  # type: ignore[arg-type]

        try:
            commands.handle(bot, {"user_id": user, "text": text}, respond)
        except Exception as error:  # noqa: BLE001 - exactly what the listener reports
            report(error, lambda message: respond(text=message))
        answers[text] = said[-1]
    db.dispose()
    return answers


BAD = ["claim -5h", "claim 99999w", "claim h", "claim 24", "claim 24h <!channel>",
       "release 42", "extend", "extend 1h 7x", "password #x", "frob <@U0ALICE001>"]


def test_bad_input_answers_as_in_slack_and_ctrl_d_leaves_only_owned_containers(
        run_console, docker_client, sqlite_url) -> None:
    expected = slack_answers(BAD, sqlite_url, ALICE)
    console = run_console("--user", ALICE)
    term = console.term
    for text in BAD:
        mark = say(console, text)
        term.wait_for(f"── only to {ALICE} \\(you\\) ─+\n" + re.escape(expected[text]),
                      after=mark)
        term.wait_for(PROMPT, after=mark)
    screen = term.screen()
    assert "Traceback" not in screen and "ref " not in screen

    mark = say(console, "claim 1h")
    access(console, ALICE, mark)
    mark = say(console, "claim 2h")
    term.wait_for(r"Lease \d+ granted for 2h", after=mark)
    term.keys("C-d")  # while the second one may still be starting
    assert term.wait_exit(timeout=READY) == 0
    assert "Scheduler stopped." in term.screen()
    leases = console.leases()
    live = {lease for lease, status in leases.items() if status in {"active", "starting"}}
    left = {int(c.labels["gpubot.lease"]) for c in ours(docker_client, console)}
    assert left and left <= live, (left, leases)  # every container left has its lease
    assert live == left, "each live lease keeps its container; the bot picks them up again"


def test_expiry_is_told_as_it_happens(run_console, docker_client) -> None:
    console = run_console("--user", ALICE, GPUBOT_MIN_LEASE="1m", GPUBOT_REMIND_BEFORE="30s")
    term = console.term
    mark = say(console, "claim 1m")
    access(console, ALICE, mark)
    lease_id = console.first_lease
    term.wait_for(rf"⏰ Lease {lease_id} ends in", after=mark, timeout=90)
    term.wait_for(rf"🏁 Lease {lease_id} has ended and its Jupyter stopped\. Your files are "
                  r"kept\.", after=mark, timeout=120)
    wait_gone(docker_client, console)
    assert console.leases()[lease_id] == "expired"
    term.signal(signal.SIGTERM)  # as a service manager stops it: like Ctrl-D
    assert term.wait_exit() == 0
    assert "Scheduler stopped." in term.screen()
