"""Figure 1: ``/gpu claim`` → access DM through the real bot, next to the floor (a plain
``docker run`` of the same image until Jupyter's /login answers 200)."""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.result import Section, Table, Target
from bench.serve import ServedBot, free_block, port_free
from bench.stats import SUMMARY_HEADER, Summary, row
from bot.adapters.jupyter_probe import http_status

JUPYTER_PORT = "8888/tcp"
FLOOR_LABEL = "gpubot.bench.floor"
POLL_S = 0.02  # the floor polls /login this often: its own error is at most this
P50_OVER_FLOOR_S = 0.6
P99_LIMIT_S = 5.0


# --------------------------------------------------------------------------- floor
@dataclass
class FloorRun:
    total: float
    create: float
    start: float
    ready: float  # from start() returning to /login 200


class Floor:
    """``docker run`` done by hand with docker-py: create + start with the image, env,
    user, port binding, workspace mount and init the bot uses (no resource limits),
    then GET /login every 20 ms until 200. Containers carry only the bench's label."""

    def __init__(self, client: Any, image: str, workspace: Path) -> None:
        from bot.security import generate_password, hash_jupyter_password

        self.client = client
        self.image = image
        self.workspace = workspace
        workspace.mkdir(parents=True, exist_ok=True)
        os.chown(workspace, 1000, 1000)
        os.chmod(workspace, 0o700)
        self.hash = hash_jupyter_password(generate_password())  # made once, outside timing
        self.count = 0
        self.ports = free_block(20)

    def _port(self) -> int:
        for _ in range(len(self.ports)):
            port = self.ports[self.count % len(self.ports)]
            self.count += 1
            if port_free(port):
                return port
        raise RuntimeError(f"no free port in {self.ports}")

    def run_once(self) -> FloorRun:
        port = self._port()
        name = f"gpubot-bench-floor-{os.getpid()}-{self.count}"
        args = {"image": self.image, "name": name, "labels": {FLOOR_LABEL: "1"},
                    "environment": {"JUPYTER_PASSWORD_HASH": self.hash,
                                 "NVIDIA_VISIBLE_DEVICES": "void"},
                    "user": "1000:1000", "ports": {JUPYTER_PORT: ("127.0.0.1", port)},
                    "volumes": {str(self.workspace): {"bind": "/workspace", "mode": "rw"}},
                    "init": True}
        url = f"http://127.0.0.1:{port}/login"
        t0 = time.perf_counter()
        container = self.client.containers.create(**args)
        try:
            t1 = time.perf_counter()
            container.start()
            t2 = time.perf_counter()
            deadline = t2 + 120
            while http_status(url, timeout=1.0) != 200:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"floor container {name}: /login never answered 200")
                time.sleep(POLL_S)
            t3 = time.perf_counter()
        finally:
            container.remove(force=True)
        return FloorRun(total=t3 - t0, create=t1 - t0, start=t2 - t1, ready=t3 - t2)

    def cleanup(self) -> None:
        for c in self.client.api.containers(all=True, filters={"label": FLOOR_LABEL}):
            with contextlib.suppress(Exception):  # already gone
                self.client.api.remove_container(c["Id"], force=True)


# --------------------------------------------------------------------------- claims
PHASES = (  # (label, how the bot reports reaching it: Web API method, text prefix)
    ("progress DM posted", "chat.postMessage", "Starting your environment"),
    ("creating container", "chat.update", "Creating the Jupyter container"),
    ("starting container", "chat.update", "Starting the Jupyter container"),
    ("ready (update)", "chat.update", "Ready: your access details"),
    ("access DM", "chat.postMessage", "Your Jupyter on"),
)


@dataclass
class ClaimRun:
    lease_id: int
    total: float  # send → access DM recorded by the stand-in
    ack: float
    marks: dict[str, float] = field(default_factory=dict)  # phase → seconds after send
    release: float = 0.0  # /gpu release → container gone


class Disturbed(RuntimeError):
    """The lease's container was removed or stopped from outside while it started (the
    engine is shared: another run's reconciler or cleanup). The sample is retried."""


OUTSIDE = ("disappeared before it was ready", "stopped before it was ready")


def _calls_since(slack: Any, t0: float) -> list[Any]:
    return [c for c in slack.calls() if c.time >= t0]


def _text(call: Any) -> str:
    return str(call.args.get("text") or "")


def access_dm_since(slack: Any, t0: float, *, failing: str, log: Any = None,
                    prefix: str = "Your Jupyter on") -> Any:
    """The access DM (its text starts with ``prefix``) the stand-in recorded since
    ``t0``, or None yet; a start that failed
    raises, saying ``failing`` (``Disturbed`` when the engine lost the start under it)."""
    calls = _calls_since(slack, t0)
    failed = next((c for c in calls if "could not start" in _text(c)), None)
    if failed is not None:
        kind = Disturbed if any(o in _text(failed) for o in OUTSIDE) else RuntimeError
        tail = f"\n{log()[-3000:]}" if log else ""
        raise kind(f"{failing}: {_text(failed)}{tail}")
    return next((c for c in calls if c.method == "chat.postMessage"
                 and _text(c).startswith(prefix)), None)


def claim_until_dm(bot: Any, user: str, *, timeout: float,
                   phases: tuple[tuple[str, str, str], ...] = PHASES
                   ) -> tuple[ClaimRun, Any, float]:
    """`/gpu claim 2h` until the access DM (the timed part of a claim, on either engine):
    the run with its marks of ``phases`` (the engine's progress messages), the DM's
    stand-in call, and the wall time it began.
    A claim that failed raises (``Disturbed`` when the engine lost the start under it)."""
    slack = bot.slack
    t0 = time.time()
    env = slack.slash_command(user, "claim 2h")
    deadline = time.monotonic() + timeout
    dm = None
    while dm is None:
        dm = access_dm_since(slack, t0, failing="claim failed", log=bot.log_text)
        if dm is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no access DM within {timeout:.0f} s:\n"
                                   f"{bot.log_text()[-3000:]}")
            time.sleep(0.01)
    match = re.search(r"\(lease (\d+)\)", str(dm.args.get("blocks")))
    if match is None:
        raise RuntimeError(f"access DM without a lease id: {dm.args}")
    run = ClaimRun(lease_id=int(match.group(1)), total=dm.time - t0,
                   ack=env.latency or float("nan"))
    for label, method, prefix in phases:
        hit = next((c for c in _calls_since(slack, t0)
                    if c.method == method and _text(c).startswith(prefix)), None)
        if hit is not None and hit.time <= dm.time:
            run.marks[label] = hit.time - t0
    return run, dm, t0


def claim_once(bot: ServedBot, client: Any, user: str, *, timeout: float = 120.0,
               check: Any = None) -> ClaimRun:
    """One claim → access DM → release. ``check(dm)``, when given, runs on the access DM
    before the release (outside the timing), e.g. to open its URL."""
    slack = bot.slack
    run, dm, _ = claim_until_dm(bot, user, timeout=timeout)
    lease_id = run.lease_id
    if check is not None:
        check(dm)
    # give the lease back and wait until its container is gone
    t1 = time.monotonic()
    slack.slash_command(user, "release")  # the only open lease of this user
    while client.api.containers(all=True, filters={"label": f"gpubot.lease={lease_id}"}):
        if time.monotonic() - t1 > 60:
            raise RuntimeError(f"the container of lease {lease_id} is still there 60 s after "
                               f"release:\n{bot.log_text()[-3000:]}")
        time.sleep(0.1)
    run.release = time.monotonic() - t1
    return run


def claim_retrying(bot: ServedBot, client: Any, user: str, disturbed: list[str],
                   log: Any, check: Any = None) -> ClaimRun:
    for _ in range(3):
        try:
            return claim_once(bot, client, user, check=check)
        except Disturbed as exc:
            disturbed.append(str(exc))
            log(f"  disturbed from outside, retrying: {exc}")
            time.sleep(1)
    raise RuntimeError("three claims in a row were disturbed from outside: "
                       + " | ".join(disturbed[-3:]))


# --------------------------------------------------------------------------- figure
@dataclass
class Interleaved:
    floors: list[FloorRun]
    claims: dict[str, list[ClaimRun]]  # by bot
    warm_floor: FloorRun
    warm_claims: dict[str, ClaimRun]
    disturbed: list[str]


def interleaved(bots: dict[str, tuple[ServedBot, Any]], client: Any, workdir: Path, *,
                repeats: int, log: Any) -> Interleaved:
    """``repeats`` rounds of one floor run and one claim through each of ``bots`` (name →
    the bot and a ``check`` as in ``claim_once``, or None), the order rotating from round
    to round, after one warm-up of each (not counted)."""
    from bench.serve import BENCH_USER_IDS
    from tests.infra import docker_engine as eng

    floor = Floor(client, eng.TEST_IMAGE, workdir / "floor-workspace")
    floor.cleanup()
    users = BENCH_USER_IDS
    settle = 0.5
    disturbed: list[str] = []
    order = ["floor", *bots]
    try:
        log("  warm-up: one floor run and one claim per bot (not counted)")
        warm_floor = floor.run_once()
        warm = {name: claim_retrying(bot, client, users[0], disturbed, log, check)
                for name, (bot, check) in bots.items()}
        floors: list[FloorRun] = []
        claims: dict[str, list[ClaimRun]] = {name: [] for name in bots}
        for i in range(repeats):
            shift = i % len(order)
            for what in order[shift:] + order[:shift]:
                time.sleep(settle)
                if what == "floor":
                    floors.append(floor.run_once())
                else:
                    bot, check = bots[what]
                    claims[what].append(claim_retrying(bot, client, users[i % len(users)],
                                                       disturbed, log, check))
            log(f"  {i + 1:2d}/{repeats}: floor {floors[-1].total:.3f} s, " + ", ".join(
                f"{name} claim→DM {runs[-1].total:.3f} s" for name, runs in claims.items()))
    finally:
        floor.cleanup()
    return Interleaved(floors, claims, warm_floor, warm, disturbed)


def phase_rows(claims: list[ClaimRun]) -> list[list[str]]:
    """Where the bot's time goes: the ack, then the intervals between its progress
    messages (a table's rows: phase, then the summary cells)."""
    prev = "send"
    rows = [row("ack of the claim envelope", Summary.of(r.ack for r in claims).scaled(1000),
                "{:.1f}")]
    rows[0][0] += " (ms)"
    for label, _, _ in PHASES:
        spans = []
        for r in claims:
            start = 0.0 if prev == "send" else r.marks.get(prev)
            end = r.marks.get(label)
            if start is not None and end is not None:
                spans.append(end - start)
        rows.append(row(f"{prev} → {label}", Summary.of(spans), "{:.3f}"))
        prev = label
    return rows


def run(bot: ServedBot, client: Any, *, repeats: int, workdir: Path,
        log: Any = print) -> Section:
    got = interleaved({"bot": (bot, None)}, client, workdir, repeats=repeats, log=log)
    floors, claims, warm_floor = got.floors, got.claims["bot"], got.warm_floor
    warm_claim, disturbed = got.warm_claims["bot"], got.disturbed
    f_total = Summary.of(r.total for r in floors)
    c_total = Summary.of(r.total for r in claims)
    diff = c_total.median - f_total.median
    ratio = c_total.median / f_total.median if f_total.median else float("nan")
    section = Section("claim", "1. Claim to access DM (real Docker, real `gpubot serve`)",
                      method=(
        f"{repeats} claims through the real `gpubot serve` process (Socket Mode to the "
        "Slack stand-in, SQLite, `GPUBOT_FAKE_GPUS=16`, image cached), each `/gpu claim 2h` → "
        "access DM → `/gpu release` → container gone, users rotating. The time runs from "
        "just before the stand-in sends the slash-command envelope to the stand-in "
        "recording the `chat.postMessage` of the access DM. Interleaved with it (order "
        f"alternating) the floor: docker-py create + start of the same image with the "
        "same env, user, port binding, workspace mount and init (no resource limits), "
        f"then `GET /login` every {POLL_S * 1000:.0f} ms until 200. One warm-up of "
        "each is not counted. Phase marks come from the progress messages the bot "
        "posts and updates (stand-in call times)."))
    section.tables.append(Table("seconds", ["", *SUMMARY_HEADER], [
        row("floor: create+start → /login 200", f_total, "{:.3f}"),
        row("bot: /gpu claim → access DM", c_total, "{:.3f}"),
    ]))
    section.tables.append(Table("bot vs floor", ["", "value"], [
        ["difference of medians (bot − floor)", f"{diff:+.3f} s"],
        ["ratio of medians (bot / floor)", f"{ratio:.2f}×"],
        ["warm-up (not counted): floor / bot", (f"{warm_floor.total:.3f} s / "
                                               f"{warm_claim.total:.3f} s")],
    ]))
    rows = phase_rows(claims)
    rows.append(row("floor: create", Summary.of(r.create for r in floors), "{:.3f}"))
    rows.append(row("floor: start", Summary.of(r.start for r in floors), "{:.3f}"))
    rows.append(row("floor: start returned → /login 200", Summary.of(r.ready for r in floors),
                    "{:.3f}"))
    rows.append(row("bot: /gpu release → container gone",
                    Summary.of(r.release for r in claims), "{:.3f}"))
    section.tables.append(Table("where the time goes (seconds unless noted)",
                                ["phase", *SUMMARY_HEADER], rows))
    if disturbed:
        section.notes.append(f"{len(disturbed)} claim(s) were disturbed from outside (their "
                             "container was removed by another process on the shared "
                             "engine while it started) and were retried: "
                             + "; ".join(sorted(set(disturbed)))[:600])
    section.targets += [
        Target("claim→DM p50 vs floor", f"median ≤ floor median + {P50_OVER_FLOOR_S} s",
               f"{c_total.median:.3f} s vs {f_total.median:.3f} s ({diff:+.3f} s)",
               diff <= P50_OVER_FLOOR_S),
        Target("claim→DM p99", f"≤ {P99_LIMIT_S:.0f} s", f"{c_total.p99:.3f} s",
               c_total.p99 <= P99_LIMIT_S),
    ]
    return section
