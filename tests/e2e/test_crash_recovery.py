"""SIGKILL the real bot at each step of a claim and of an expiry, restart it, and check
that one reconcile leaves the world consistent: no orphan container, no lease stuck in
a transient state, no GPU or port held twice, the user told (a working lease or a
clear failure), the workspace intact."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import BOB, ServedBot, launch, query, stop, told

pytestmark = [pytest.mark.e2e, pytest.mark.docker]
FAST = {"GPUBOT_READY_TIMEOUT": "15s", "GPUBOT_STARTING_GRACE": "1s",
        "GPUBOT_EFFECT_RETRY_AFTER": "2s", "GPUBOT_RECONCILE_SECONDS": "1",
        "GPUBOT_MIN_LEASE": "1m", "GPUBOT_DEFAULT_LEASE": "1h"}
POINTS = [("claim.after_lease_row", "2h"), ("docker.after_create", "2h"),
          ("claim.after_start", "2h"), ("access.after_commit", "2h"), ("expire.after_commit", "1m")]


def seed_workspace(root: Path) -> Path:
    home = root / BOB
    home.mkdir(parents=True)
    os.chown(home, 1000, 1000)
    home.chmod(0o700)
    (home / "thesis.ipynb").write_text("precious")
    return home / "thesis.ipynb"


def settled(bot: ServedBot, docker_client) -> dict | None:
    transient = query(bot, "select id, status from leases where status in "
                           "('starting', 'pending_approval')")
    live = {r.id for r in query(bot, "select id from leases where status in ('starting','active')")}
    containers = docker_client.containers.list(  # the bot may remove one meanwhile
        all=True, filters={"label": f"gpubot.user={BOB}"}, ignore_removed=True)
    orphans = [c.name for c in containers if int(c.labels["gpubot.lease"]) not in live]
    held_gpus = query(bot, "select gpu_uuid, count(*) n from gpu_allocations group by gpu_uuid having n > 1")
    stale = query(bot, "select a.lease_id from gpu_allocations a join leases l on l.id = a.lease_id "
                       "where l.status not in ('starting','active')")
    outcome = told(bot)
    state = dict(transient=transient, orphans=orphans, dup=held_gpus, stale=stale, outcome=outcome)
    done = not transient and not orphans and not held_gpus and not stale and outcome
    return state if done else None


@pytest.mark.parametrize(("point", "duration"), POINTS, ids=[p for p, _ in POINTS])
def test_recovers_after_sigkill(point: str, duration: str, slack_standin, docker_client,
                                tmp_path: Path) -> None:
    precious = seed_workspace(tmp_path / "workspaces")
    bot = launch(slack_standin, tmp_path, extra={**FAST, "GPUBOT_CRASHPOINT": point})
    try:
        slack_standin.slash_command(BOB, f"claim {duration}")
        assert bot.process.wait(timeout=120) == -signal.SIGKILL, bot.log_text()
    finally:
        if bot.process.poll() is None:
            bot.process.kill()
    restarted = launch(slack_standin, tmp_path, extra=FAST, low=bot.ports[0])
    try:
        started = time.monotonic()
        state = slack_standin.wait_for(lambda: settled(restarted, docker_client), timeout=90,
                                       message=f"not settled after {point}")
        print(f"\n[crash] {point}: settled in {time.monotonic() - started:.1f}s -> {state['outcome']}")
        if point in ("claim.after_start", "access.after_commit"):
            assert state["outcome"] == "working"
        elif point == "expire.after_commit":
            assert "has ended" in state["outcome"]
        else:
            assert state["outcome"].startswith("told: ") and "could not start" in state["outcome"]
        assert precious.read_text() == "precious"
    finally:
        stop(restarted, docker_client)
