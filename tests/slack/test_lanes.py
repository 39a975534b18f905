"""Two work lanes (issue 11.13): with every slow worker stuck in a container start,
`/gpu status` still answers at once. The real `/gpu` handler and services; the runtime
is the fake one, held at the start of every container."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from bot.db.repo import LeaseRepo
from bot.domain.lease import LeaseStatus
from handlers.commands import handle
from handlers.context import SLOW_WORKERS, HandlerContext, quick_command
from tests.fakes.containers import FakeContainerRuntime
from tests.fakes.gpus import FakeInventory
from tests.fakes.services import build_harness


class HeldRuntime(FakeContainerRuntime):
    """Every start waits for ``gate``: an image pull that takes minutes."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.waiting = threading.Event(), 0
        self._count = threading.Lock()

    def start(self, spec: Any, *, on_progress: Any = None) -> Any:
        with self._count:
            self.waiting += 1
        assert self.gate.wait(30)
        return super().start(spec, on_progress=on_progress)


def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def gpu(ctx: HandlerContext, user: str, text: str, answers: list[str]) -> Any:
    """What the `/gpu` listener hands to its context, in the lane the text calls for."""
    command = {"user_id": user, "text": text, "channel_id": "C0GENERAL1"}

    def respond(text: str, **_: Any) -> None:
        answers.append(text)

    return ctx.submit(lambda: handle(ctx.bot, command, respond), tell=answers.append,
                      quick=quick_command(text))


def test_status_answers_at_once_while_every_slow_worker_starts_a_container(db) -> None:
    runtime = HeldRuntime()
    kit = build_harness(db, runtime=runtime, inventory=FakeInventory(SLOW_WORKERS + 1))
    ctx = HandlerContext(kit.gpubot.use_cases, kit.notifier)
    claims = [gpu(ctx, f"U0USER{i:04d}", "claim 2h", []) for i in range(SLOW_WORKERS + 1)]
    until(lambda: runtime.waiting == SLOW_WORKERS)  # every slow worker is stuck; one waits
    try:
        answers: list[str] = []
        started = time.monotonic()
        gpu(ctx, "U0CAROL003", "status", answers).result(timeout=5)
        assert time.monotonic() - started < 1.0
        assert answers and "GPUs free" in answers[0]
        mine: list[str] = []
        gpu(ctx, "U0USER0000", "mine", mine).result(timeout=5)
        assert mine == ["You have 1 open lease(s)."]  # still starting
    finally:
        runtime.gate.set()
    for future in claims:
        future.result(timeout=30)
    with kit.res.db.transaction() as session:
        assert len(LeaseRepo(session).with_status(LeaseStatus.ACTIVE)) == SLOW_WORKERS + 1
    ctx.pool.shutdown()
    ctx.quick_pool.shutdown()


@pytest.mark.parametrize(("text", "quick"), [
    ("status", True), ("mine", True), ("help", True), ("", True), ("password 3", True),
    ("extend 2h", True), ("frobnicate", True), ("CLAIM 24h", False), ("claim 3d 2 gpus", False),
    ("release", False), ("leave 4", False)])
def test_which_commands_are_quick(text: str, quick: bool) -> None:
    assert quick_command(text) is quick


def test_a_slow_lane_full_of_work_waits_in_line_but_loses_none(db) -> None:
    kit = build_harness(db)
    ctx = HandlerContext(kit.gpubot.use_cases, kit.notifier)
    gate, done = threading.Event(), []
    futures = [ctx.submit(lambda i=i: gate.wait(10) and done.append(i), tell=print)
               for i in range(SLOW_WORKERS * 2)]
    assert ctx.submit(lambda: "quick", tell=print, quick=True).result(timeout=2) == "quick"
    gate.set()
    for future in futures:
        future.result(timeout=10)
    assert sorted(done) == list(range(SLOW_WORKERS * 2))
