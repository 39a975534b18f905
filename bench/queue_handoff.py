"""Figure 6: queue hand-off through the real bot. With one (synthetic) GPU, one user holds
it, another claims (queued: "#1 in the queue"), the holder releases with the slash
command, and the time runs until the waiter's access DM ("Your GPU is ready"), next to
the floor of figure 1 (a plain ``docker run`` of the same image until /login answers)
measured interleaved in the same run. Two bots side by side, one with 1,000 and one with
10,000 ended leases in its database, their hand-offs interleaved (how the hand-off grows
with the lease history)."""

from __future__ import annotations

import contextlib
import math
import re
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.claim_dm import Floor, FloorRun, _calls_since, _text, access_dm_since
from bench.result import Section, Table, Target
from bench.serve import (BENCH_USER_IDS, ServedBot, launch, remove_bench_containers, standin,
                         stop)
from bench.stats import SUMMARY_HEADER, Summary, row

P50_OVER_FLOOR_S = 0.6
HISTORY_SIZES = (1_000, 10_000)
HISTORY_USER = "UBENCHHIST{:03d}"
HISTORY_USERS = 50
READY_PREFIX = "Your GPU is ready"
PHASES = (  # the waiter's start, as the bot reports it (method, text prefix)
    ("waiter's progress DM posted", "chat.postMessage", "Starting your environment"),
    ("creating container", "chat.update", "Creating the Jupyter container"),
    ("starting container", "chat.update", "Starting the Jupyter container"),
    ("ready (update)", "chat.update", "Ready: your access details"),
    ("access DM", "chat.postMessage", READY_PREFIX),
)
STOPPED = "old container stopped and removed (stop.done)"
GRANTED = "granted by the queue's pass (dequeue)"
LEASE_IN_TEXT = re.compile(r"Lease (\d+) is #(\d+) in the queue")


# ------------------------------------------------------------------ history
def seed_history(url: str, count: int) -> None:
    """``count`` ended leases (released, expired, failed in turn; ids 1..count, below
    the ids bench/serve.py's seed makes the bot use) with their users, before the bot
    starts: a database that has served a lab for a while."""
    from sqlalchemy import insert

    from bot.db import migrate
    from bot.db.engine import Database
    from bot.db.tables import leases, users
    from bot.domain.lease import LeaseStatus

    migrate.upgrade(url)
    now = datetime.now(UTC)
    ends = (LeaseStatus.RELEASED, LeaseStatus.EXPIRED, LeaseStatus.FAILED)
    db = Database(url)
    try:
        with db.transaction() as s:
            s.execute(insert(users), [{"id": HISTORY_USER.format(u), "created_at": now}
                                      for u in range(HISTORY_USERS)])
            rows = []
            for i in range(1, count + 1):
                started = now - timedelta(hours=2 * (count - i) + 3)
                rows.append({
                    "id": i, "user_id": HISTORY_USER.format(i % HISTORY_USERS),
                    "status": ends[i % 3], "duration_s": timedelta(hours=2), "gpu_count": 1,
                    "host": "bench-history", "gpu_uuids": (f"GPU-history-{i % 8}",),
                    "port": 30000 + i % 20, "container_name": f"gpubot-{i}",
                    "container_id": f"history{i}", "created_at": started,
                    "started_at": started, "expires_at": started + timedelta(hours=2),
                    "ended_at": started + timedelta(hours=1), "reminders_sent": "",
                    "end_reason": ends[i % 3].value, "util_sum": 40 * i % 997,
                    "util_samples": 120, "util_peak": 90, "mem_peak_mib": 4096,
                    "idle_samples": 10})
            s.execute(insert(leases), rows)
    finally:
        db.dispose()


# ------------------------------------------------------------------ one hand-off
@dataclass
class Handoff:
    holder_lease: int
    waiter_lease: int
    freed_to_dm: float  # the holder's lease ended (ended_at) → the waiter's access DM
    release_to_dm: float  # /gpu release sent → the waiter's access DM
    queued_answer: float  # the waiter's /gpu claim sent → "#1 in the queue" answer
    release_answer: float  # capacity freed → the release's answer posted
    sent_to_freed: float  # /gpu release sent → its lease ended
    stopped_to_dm: float  # the old container stopped and removed (stop.done) → access DM
    marks: dict[str, float] = field(default_factory=dict)  # phase → s after freed


def _epoch(stored: str) -> float:
    return datetime.fromisoformat(stored).replace(tzinfo=UTC).timestamp()  # naive UTC


def _recorded(db_path: Path, holder: int, waiter: int) -> tuple[str, float, float, float]:
    """From the bot's database, read once after the hand-off: the released lease's status
    and ``ended_at`` (its release transaction: capacity freed), the time its ``stop``
    effect was acknowledged (container stopped and removed), and the waiter's
    ``dequeue`` audit row (granted by the queue's pass); epoch seconds."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as conn:
        status, ended = conn.execute("SELECT status, ended_at FROM leases WHERE id = ?",
                                     (holder,)).fetchone()
        (stopped,) = conn.execute("SELECT max(at) FROM audit WHERE lease_id = ? AND action = "
                                  "'stop.done'", (holder,)).fetchone()
        (granted,) = conn.execute("SELECT max(at) FROM audit WHERE lease_id = ? AND action = "
                                  "'dequeue'", (waiter,)).fetchone()
    if ended is None or stopped is None or granted is None:
        raise RuntimeError(f"lease {holder} ({status}): ended_at {ended}, stop.done "
                           f"{stopped}; lease {waiter} dequeued {granted}")
    return status, _epoch(ended), _epoch(stopped), _epoch(granted)


def _wait(what: str, probe: Any, bot: ServedBot, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout:.0f} s:\n{bot.log_text()[-3000:]}")
        time.sleep(0.01)


def handoff_once(bot: ServedBot, client: Any, *, holder: str, holder_lease: int,
                 waiter: str) -> Handoff:
    """``waiter`` claims (queued behind ``holder``), ``holder`` releases; returns the
    hand-off once the waiter's access DM came and the holder's container is gone."""
    slack = bot.slack
    seen = len(slack.ephemerals(user=waiter))
    t_claim = time.time()
    slack.slash_command(waiter, "claim 2h")
    answer = _wait("no answer to the waiter's claim", lambda: next(
        (e for e in slack.ephemerals(user=waiter)[seen:] if "queue" in e.text), None), bot)
    match = LEASE_IN_TEXT.search(answer.text)
    if match is None or match.group(2) != "1":
        raise RuntimeError(f"the waiter's claim was not queued as #1: {answer.text!r}")
    waiter_lease = int(match.group(1))
    queued_answer = float(answer.ts) - t_claim
    time.sleep(0.5)  # the pass the queued claim kicked has found nothing to grant
    seen_holder = len(slack.ephemerals(user=holder))
    t0 = time.time()
    slack.slash_command(holder, "release")  # the holder's only open lease

    dm = _wait("no access DM for the waiter", lambda: access_dm_since(
        slack, t0, failing="the waiter's start failed", prefix=READY_PREFIX), bot)
    if f"(lease {waiter_lease})" not in str(dm.args.get("blocks")):
        raise RuntimeError(f"the access DM is not for lease {waiter_lease}: {dm.args}")
    released = _wait("no answer to the release", lambda: next(
        (e for e in slack.ephemerals(user=holder)[seen_holder:] if "released" in e.text),
        None), bot)
    status, freed, stopped, granted = _recorded(bot.workdir / "gpubot.db", holder_lease,
                                                waiter_lease)
    if status != "released":
        raise RuntimeError(f"lease {holder_lease} is {status} after its release")
    run = Handoff(holder_lease, waiter_lease, freed_to_dm=dm.time - freed,
                  release_to_dm=dm.time - t0, queued_answer=queued_answer,
                  release_answer=float(released.ts) - freed, sent_to_freed=freed - t0,
                  stopped_to_dm=dm.time - stopped)
    run.marks[STOPPED] = stopped - freed
    run.marks[GRANTED] = granted - freed
    calls = _calls_since(slack, t0)
    for label, method, prefix in PHASES:
        hit = next((c for c in calls if c.method == method and _text(c).startswith(prefix)),
                   None)
        if hit is not None and hit.time <= dm.time:
            run.marks[label] = hit.time - freed
    waited = time.monotonic()
    while client.api.containers(all=True, filters={"label": f"gpubot.lease={holder_lease}"}):
        if time.monotonic() - waited > 60:
            raise RuntimeError(f"the container of lease {holder_lease} is still there 60 s "
                               f"after its release:\n{bot.log_text()[-3000:]}")
        time.sleep(0.1)
    return run


# ------------------------------------------------------------------ one bot
class BotSession:
    """One ``gpubot serve`` with one synthetic GPU and ``history`` ended leases, two users
    of its own taking turns (holder, waiter), its reconciler scoped to them: two
    sessions share the engine without stopping each other's containers."""

    def __init__(self, engine: Any, history: int, users: tuple[str, str]) -> None:
        self.engine, self.history, self.users = engine, history, users
        self.workdir = Path(tempfile.mkdtemp(prefix="gpubot-bench-queue-"))
        self.slack = standin()
        self.bot: ServedBot | None = None
        self.handoffs: list[Handoff] = []
        self.first_claim = math.nan  # the first /gpu claim → access DM (GPU free), warm-up
        self.warm = math.nan
        self._turn: tuple[str, str, int] | None = None  # holder, waiter, holder's lease

    def start(self) -> None:
        seed_history(f"sqlite:///{self.workdir}/gpubot.db", self.history)
        self.bot = launch(self.slack, self.workdir, fake_gpus=1, docker_host=self.engine.host,
                          scoped=True, extra={"GPUBOT_BENCH_SCOPE_USERS": ",".join(self.users)})

    def warm_up(self) -> None:
        """The first claim (a direct grant) and one hand-off, neither counted."""
        assert self.bot is not None
        first = _first_claim(self.bot, self.users[0])
        self.first_claim = first.total
        self._turn = (self.users[0], self.users[1], first.lease_id)
        self.warm = self._handoff().freed_to_dm

    def handoff(self) -> Handoff:
        done = self._handoff()
        self.handoffs.append(done)
        return done

    def _handoff(self) -> Handoff:
        assert self.bot is not None and self._turn is not None
        holder, waiter, lease = self._turn
        done = handoff_once(self.bot, self.engine.client, holder=holder, holder_lease=lease,
                            waiter=waiter)
        self._turn = (waiter, holder, done.waiter_lease)
        return done

    def problems(self) -> list[str]:
        return self.slack.problems()

    def close(self, *, keep: bool) -> None:
        if self.bot is not None:
            stop(self.bot)
        client = self.engine.client
        for user in self.users:
            for c in client.api.containers(all=True, filters={"label": f"gpubot.user={user}"}):
                with contextlib.suppress(Exception):  # already gone
                    client.api.remove_container(c["Id"], force=True)
        self.slack.stop()
        if keep:
            print(f"kept the bot's folder for inspection: {self.workdir}", flush=True)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _first_claim(bot: ServedBot, user: str) -> Any:
    """The holder's claim while the GPU is free: a direct grant (claim→DM)."""
    from bench.claim_dm import ClaimRun

    slack = bot.slack
    t0 = time.time()
    env = slack.slash_command(user, "claim 2h")

    def dm() -> Any:
        return next((c for c in _calls_since(slack, t0) if c.method == "chat.postMessage"
                     and _text(c).startswith("Your Jupyter on")), None)

    found = _wait("no access DM for the first claim", dm, bot)
    match = re.search(r"\(lease (\d+)\)", str(found.args.get("blocks")))
    if match is None:
        raise RuntimeError(f"access DM without a lease id: {found.args}")
    return ClaimRun(lease_id=int(match.group(1)), total=found.time - t0,
                    ack=env.latency or float("nan"))


# ------------------------------------------------------------------ figure
def run(engine: Any, *, repeats: int, log: Any = print) -> Section:
    from tests.infra import docker_engine as eng

    workspace = Path(tempfile.mkdtemp(prefix="gpubot-bench-queue-floor-"))
    floor = Floor(engine.client, eng.TEST_IMAGE, workspace / "floor-workspace")
    floor.cleanup()
    remove_bench_containers(engine.client)
    sessions = [BotSession(engine, history, (BENCH_USER_IDS[2 * n], BENCH_USER_IDS[2 * n + 1]))
                for n, history in enumerate(HISTORY_SIZES)]
    floors: list[FloorRun] = []
    ok = False
    try:
        for session in sessions:
            session.start()
            assert session.bot is not None
            log(f"  gpubot serve with GPUBOT_FAKE_GPUS=1 and {session.history:,} ended leases "
                f"is up (pid {session.bot.pid}, {session.bot.started_s:.1f} s to connect)")
        time.sleep(3)  # the start-up reconciles
        floor.run_once()
        for session in sessions:
            session.warm_up()
            log(f"  warm-up, {session.history:,} leases (not counted): claim→DM "
                f"{session.first_claim:.3f} s, hand-off {session.warm:.3f} s")
        for i in range(repeats):
            steps: list[Any] = [None, *sessions]  # None: the floor
            for step in (steps if i % 2 == 0 else steps[::-1]):
                time.sleep(0.5)
                if step is None:
                    floors.append(floor.run_once())
                else:
                    step.handoff()
            log(f"  {i + 1:2d}/{repeats}: floor {floors[-1].total:.3f} s, hand-off "
                + ", ".join(f"{s.history:,} leases {s.handoffs[-1].freed_to_dm:.3f} s"
                            for s in sessions))
        problems = [p for s in sessions for p in s.problems()]
        if problems:
            raise RuntimeError("Slack stand-in problems: " + "; ".join(problems[:5]))
        ok = True
    finally:
        for session in sessions:
            session.close(keep=not ok)
        floor.cleanup()
        shutil.rmtree(workspace, ignore_errors=True)

    f_total = Summary.of(f.total for f in floors)
    section = Section("queue", "6. Queue hand-off: capacity freed → the next holder's access "
                               "DM (real Docker, real `gpubot serve`)", method=(
        "Two `gpubot serve` processes as in figure 1 (Socket Mode, each to its own Slack "
        "stand-in, SQLite, the private dockerd, image cached) but with `GPUBOT_FAKE_GPUS=1`, "
        f"side by side: one with {HISTORY_SIZES[0]:,} and one with {HISTORY_SIZES[1]:,} ended "
        "leases already in its database, each with two users of its own (its reconciler "
        "scoped to them, as bench/_scoped_serve.py does on a shared engine). In each, user A "
        "claims (a direct grant) and one hand-off is made, neither counted. A hand-off: the "
        "user without a lease sends `/gpu claim 2h` (the bench checks that the answer says "
        "`#1 in the queue`), 0.5 s later the holder sends `/gpu release`; the roles then "
        "swap. *Hand-off* runs from the released lease's `ended_at` (read from the bot's "
        "database afterwards: the release transaction, i.e. capacity freed in the database) "
        "to the stand-in recording the `chat.postMessage` of the waiter's \"Your GPU is "
        "ready\" access DM; *release sent → DM* from just before the stand-in sends the "
        "release envelope; *old container stopped → DM* from the acknowledgement of the "
        "released lease's `stop` effect (its `stop.done` audit row: container stopped and "
        "removed), after which the bot signals capacity freed to the queue. The phase marks "
        "are the `stop.done` and the waiter's `dequeue` audit rows and the stand-in's times "
        "of the waiter's progress messages. After each hand-off the bench waits until the "
        "released lease's container is gone. Per repetition, 0.5 s apart, in an order that "
        "reverses every repetition: the floor of figure 1 (`docker run` of the same image "
        "until `/login` answers 200), a hand-off on the first bot and one on the second; "
        f"{repeats} repetitions, after one untimed floor run."))
    rows = [row("floor: create+start → /login 200", f_total, "{:.3f}")]
    phase_rows, vs_rows = [], []
    for r in sessions:
        size = f"{r.history:,} leases"
        h = Summary.of(x.freed_to_dm for x in r.handoffs)
        rows += [row(f"{size}: hand-off (capacity freed → access DM)", h, "{:.3f}"),
                 row(f"{size}: /gpu release sent → access DM",
                     Summary.of(x.release_to_dm for x in r.handoffs), "{:.3f}"),
                 row(f"{size}: old container stopped (stop.done) → access DM",
                     Summary.of(x.stopped_to_dm for x in r.handoffs), "{:.3f}")]
        diff = h.median - f_total.median
        vs_rows.append([size, f"{h.median:.3f} s", f"{f_total.median:.3f} s",
                        f"{diff:+.3f} s", f"{h.median / f_total.median:.2f}×",
                        f"{r.first_claim:.3f} s"])
        section.targets.append(Target(
            f"queue hand-off p50 vs floor ({size})", f"median ≤ floor median + "
            f"{P50_OVER_FLOOR_S} s", f"{h.median:.3f} s vs {f_total.median:.3f} s "
            f"({diff:+.3f} s)", diff <= P50_OVER_FLOOR_S))
        section.metrics[f"queue:{r.history}:median_s"] = h.median
        section.metrics[f"queue:{r.history}:p99_s"] = h.p99
        section.metrics[f"queue:{r.history}:floor_median_s"] = f_total.median
        phase_rows += [
            row(f"{size}: /gpu claim sent → \"#1 in the queue\" answer (ms)",
                Summary.of(x.queued_answer for x in r.handoffs).scaled(1000), "{:.1f}"),
            row(f"{size}: /gpu release sent → capacity freed (ms)",
                Summary.of(x.sent_to_freed for x in r.handoffs).scaled(1000), "{:.1f}"),
            row(f"{size}: capacity freed → release answered",
                Summary.of(x.release_answer for x in r.handoffs), "{:.3f}")]
        prev = "capacity freed"
        for label in (STOPPED, GRANTED, *(p[0] for p in PHASES)):
            spans = [x.marks[label] - x.marks.get(prev, 0.0) for x in r.handoffs
                     if label in x.marks and (prev == "capacity freed" or prev in x.marks)]
            phase_rows.append(row(f"{size}: {prev} → {label}", Summary.of(spans), "{:.3f}"))
            prev = label
    section.tables.append(Table("seconds", ["", *SUMMARY_HEADER], rows))
    section.tables.append(Table("hand-off vs floor (medians)", [
        "database", "hand-off", "floor", "difference", "ratio",
        "first claim → DM (warm-up, GPU free)"], vs_rows))
    section.tables.append(Table("where the time goes (seconds unless noted)",
                                ["phase", *SUMMARY_HEADER], phase_rows))
    return section
