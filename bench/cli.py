"""``python -m bench``: run the benchmarks, print the figures, write docs/benchmarks.md."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._figure import run_isolated
from bench.result import Section, Target, text_table

NAMES = ("claim", "ack", "concurrency", "ticks", "memory", "queue", "idle", "access", "slurm")
SERVED = {"claim", "ack", "memory"}  # one `gpubot serve` with 16 synthetic GPUs
ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Sizes:
    claims: int
    acks: int
    burst: int
    burst_gpus: int
    burst_rounds: int
    tick_reps: int
    tick_small_reps: int
    handoffs: int  # queue hand-offs per bot (two bots: 1,000 and 10,000 leases)
    idle_reps: int
    idle_small_reps: int


FULL = Sizes(claims=20, acks=200, burst=200, burst_gpus=8, burst_rounds=3, tick_reps=50,
             tick_small_reps=5, handoffs=12, idle_reps=50, idle_small_reps=20)
QUICK = Sizes(claims=3, acks=30, burst=200, burst_gpus=8, burst_rounds=1, tick_reps=3,
              tick_small_reps=2, handoffs=2, idle_reps=3, idle_small_reps=2)


def _log(text: str) -> None:
    print(text, flush=True)


def _load() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def _loadavg() -> str:
    try:
        return " / ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def _measured(key: str, make: Any) -> Section:
    """Run one figure; on failure a Section carrying the error. Notes the 1-minute load
    average before and after (the machine may be shared with other work)."""
    before = _load()
    try:
        section = make()
    except Exception as exc:  # noqa: BLE001 - the other figures still run
        return _failed(key, key, exc)
    section.notes.append(f"load average (1 min) before / after this figure: {before} / "
                         f"{_load()} on {os.cpu_count()} cores")
    return section


def _failed(key: str, title: str, exc: BaseException) -> Section:
    traceback.print_exc()
    return Section(key, title, method="", error=f"{type(exc).__name__}: {exc}"[:2000])


def run_served(selected: set[str], sizes: Sizes, sections: list[Section], engine: Any) -> None:
    """claim, ack and memory share one ``gpubot serve`` process."""
    from bench import acks, claim_dm, memory
    from bench.serve import BURST, launch, remove_bench_containers, standin, stop

    workloads = [n for n in ("claim", "ack") if n in selected]
    if "memory" in selected and not workloads:
        workloads = ["claim", "ack"]  # memory "after the runs" needs runs
    docker_client = engine.client
    workdir = Path(tempfile.mkdtemp(prefix="gpubot-bench-serve-"))
    slack = standin()
    bot = None
    try:
        remove_bench_containers(docker_client)
        bot = launch(slack, workdir, docker_host=engine.host, scoped=not engine.private)
        _log(f"gpubot serve is up (pid {bot.pid}, {bot.started_s:.1f} s to connect)")
        time.sleep(3)  # let the start-up reconcile run
        idle = memory.sample(bot)
        _log(f"  idle VmRSS {statistics.median(idle):.1f} MB")
        for name in workloads:
            _log(f"\n== {name}")
            if name == "claim":
                section = _measured(name, lambda: claim_dm.run(
                    bot, docker_client, repeats=sizes.claims, workdir=workdir, log=_log))
            else:
                section = _measured(name, lambda: acks.run(bot, count=sizes.acks, log=_log))
            sections.append(section)
            if section.error:
                _log(bot.log_text()[-3000:])
            if bot.process.poll() is not None:
                raise RuntimeError(f"gpubot serve died (exit {bot.process.returncode})")
        if "memory" in selected:
            def measure_memory() -> Section:
                time.sleep(2)
                after = memory.sample(bot)
                done = " and ".join({"claim": f"the {sizes.claims + 1} claims",
                                     "ack": f"the {sizes.acks + 2} slash commands"}[w]
                                    for w in workloads)
                _log(f"\n== memory: burst of {BURST} claims at once")
                spike = memory.burst(bot, docker_client, BURST)
                _log(f"  VmRSS {statistics.median(spike.rss):.1f} MB with {len(spike.dm_s)} "
                     f"running, {statistics.median(spike.after_release):.1f} MB after release")
                return memory.section(idle, after, bot.status("VmHWM") / 1024, done, spike)

            sections.append(_measured("memory", measure_memory))
        problems = slack.problems()
        if problems:
            sections[-1].notes.append("Slack stand-in problems: " + "; ".join(problems[:5]))
    finally:
        if bot is not None:
            stop(bot, docker_client)
        slack.stop()
        if any(s.error for s in sections):
            _log(f"kept the bot's folder for inspection: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _engine_version(engine: Any) -> str:
    v = engine.client.version()
    return (f"Engine {v.get('Version')} (API {v.get('ApiVersion')}, storage "
            f"{engine.client.info().get('Driver')}); used: {engine.description}")


def summary_rows(sections: list[Section]) -> list[list[str]]:
    rows = []
    for s in sections:
        if s.error:
            rows.append([s.title, "—", f"run failed: {s.error.splitlines()[0]}", "n/a"])
        for t in s.targets:
            rows.append([t.name, t.goal, t.measured, t.verdict])
    return rows


def growth_section(sections: list[Section]) -> Section | None:
    """How the queue hand-off and the idle sample tick grow with leases ×10 and GPUs ×10,
    from the figures the queue and idle sections measured in this run."""
    from bench.idle_tick import GPUS, TOTAL, growth_key
    from bench.queue_handoff import HISTORY_SIZES
    from bench.result import Table

    got = {k: v for s in sections if s.key in ("queue", "idle", "slurm") and not s.error
           for k, v in s.metrics.items()}
    if not got:
        return None

    def ratio(a: float | None, b: float | None) -> str:
        return f"{b / a:.2f}×" if a and b is not None else "n/a"

    rows = []
    small, large = HISTORY_SIZES
    q = [got.get(f"queue:{n}:{f}") for n in (small, large)
         for f in ("median_s", "p99_s", "floor_median_s")]
    if None not in q:
        grown = f"leases ×10 ({small:,} → {large:,}, 1 GPU)"
        rows += [["queue hand-off (capacity freed → access DM)", grown, f"{q[0]:.3f} s",
                  f"{q[3]:.3f} s", ratio(q[0], q[3]), ratio(q[1], q[4]), "—"],
                 ["queue hand-off minus the floor (measured interleaved with both)", grown,
                  f"{q[0] - q[2]:+.3f} s", f"{q[3] - q[5]:+.3f} s", "", "", "—"]]
    for backend in ("sqlite", "postgresql"):
        for what, a, b in ((f"leases ×10 ({TOTAL // 10:,} → {TOTAL:,}, {GPUS} GPUs)",
                            (TOTAL // 10, GPUS), (TOTAL, GPUS)),
                           (f"GPUs ×10 ({GPUS // 8} → {GPUS}, {TOTAL:,} leases)",
                            (TOTAL, GPUS // 8), (TOTAL, GPUS))):
            vals = [got.get(growth_key(backend, *size, f)) for size in (a, b)
                    for f in ("median_ms", "p99_ms", "statements")]
            if None in vals:
                continue
            rows.append([f"idle sample tick, every lease idle ({backend})", what,
                         f"{vals[0]:.1f} ms", f"{vals[3]:.1f} ms", ratio(vals[0], vals[3]),
                         ratio(vals[1], vals[4]), f"{vals[2]:.0f} → {vals[5]:.0f}"])
    from bench.slurm import GROWTH_METHOD, growth_rows

    slurm_rows = growth_rows(got)
    rows += slurm_rows
    section = Section("growth", "8. How each cost grows", method=(
        "Ratios of the figures measured above in this run: the queue hand-off of figure 6 "
        f"with {small:,} and with {large:,} leases in the bot's database; the idle *sample* "
        f"tick of figure 7 with every active lease idle, at {TOTAL // 10:,} and {TOTAL:,} "
        f"leases ({GPUS} GPUs) and at {GPUS // 8} and {GPUS} GPUs ({TOTAL:,} leases; one "
        "active lease per GPU, so GPUs ×10 is also active and idle leases ×10). A ratio "
        "of 1.00× means the cost does not grow; 10× would be linear. The two hand-off figures "
        "come from two bots running side by side, their hand-offs interleaved, so the "
        "machine's load weighs on both alike." + (GROWTH_METHOD if slurm_rows else "")))
    section.tables.append(Table("", ["cost", "grown by", "median before", "median after",
                                     "ratio of medians", "ratio of p99", "statements"],
                                rows, left=2))
    return section


HOW_TO_RUN = """## How to run

From the repository root, as root on the machine with the test Docker engine and
PostgreSQL (`tests/infra/setup_docker.sh`, `tests/infra/build_images.sh`) and, for the
Slurm figures, the test cluster's parts (`tests/infra/setup_slurm.sh`; without them those
figures say why and are not measured):

    .venv/bin/python -m bench                  # everything, writes docs/benchmarks.md
    .venv/bin/python -m bench --quick          # smoke run, small samples, prints only
    .venv/bin/python -m bench --only claim,ack # some figures: claim ack concurrency ticks
                                               # memory queue idle access slurm

`--output PATH` writes the report elsewhere (partial and quick runs write none by
default). The served-bot figures run on a private dockerd the bench starts and stops
(`/run/gpubot-bench/docker.sock`, data root `/var/lib/gpubot-bench-docker` kept as an
image cache): on the shared test engine other runs' bots stop gpubot containers they do
not know (see bench/engine.py). `GPUBOT_BENCH_DOCKER_HOST` names another engine;
`GPUBOT_BENCH_PG_URL` another PostgreSQL server (default: `GPUBOT_TEST_PG_URL` or
`postgresql+psycopg://postgres@127.0.0.1:5432/postgres`). The exit status is 0 when
every target is met, 2 when one is missed, 1 when a figure could not be measured."""

EARLIER_FINDINGS = """## Earlier findings behind the code

Measured once, when the code they explain was written (2026-11-22, commit 1b39bdf's
machine); kept here rather than in docstrings. The figures above are this run's.

- `bot.serve.return_freed_memory` (glibc `M_MMAP_THRESHOLD` 1 MiB): after a burst of 16
  claims the bot held 347 MB, 100 MB with it (argon2 allocates 19 MiB per hash and the
  per-thread arenas kept them).
- `bot.serve.freeze_startup_objects` (`gc.freeze()` once built): the worst full-collection
  pause inside a 10,000-lease reconcile tick went from 113 ms to about 20 ms.
- `LeaseRepo.serialize_grants` (a PostgreSQL advisory lock per host): without it, 200
  simultaneous claims for 8 GPUs convoyed on the allocation keys, 40 statements a claim
  instead of 10.
- Figure 9's download through Caddy (2026-12-01, this 2-core machine while other work ran
  on it, load 1.5-4; HTTP/1.1 unless said, medians of 3-7 alternating runs per variant):
  the client is not the cause: curl gave the same ratio as requests (406 vs 811 MB/s),
  and requests' read size changed nothing (`iter_content` 1 MiB or 8 MiB, `readinto`:
  250-253 MB/s through Caddy alike). Nor are Caddy's settings: `flush_interval -1` 347,
  transport read/write buffers of 256 KiB 375, both 329, against 361 MB/s as configured.
  The cost is TLS, on both ends: Caddy as a plain-HTTP reverse proxy kept 85-104 % of
  direct (688 vs 811, 628 vs 605 MB/s in two runs), Caddy serving the file itself over
  TLS with no upstream fell to 483 (of 605); Caddy's CPU profile
  (admin API /debug/pprof) during the downloads was 47 % read/write system calls and 31 %
  AES-GCM, and TLS 1.3 already picks the cheapest suite here, TLS_AES_128_GCM_SHA256
  (AES-256-GCM 353, ChaCha20-Poly1305 300 MB/s). HTTP/2, which browsers negotiate through
  Caddy, costs more again: 253 MB/s, 0.25 CPU s per 100 MB in Caddy against 0.13 over
  HTTP/1.1 (Go's HTTP/2 server hands every 16 KiB frame to another goroutine). A route
  change through the admin API (`add_route`) takes 4 ms (median of 10)."""


def render_markdown(sections: list[Section], machine: dict[str, str], argv: list[str],
                    wall: float, quick: bool) -> str:
    from bench.result import Table, markdown_table

    command = "python -m bench" + ("".join(f" {a}" for a in argv) if argv else "")
    out = ["# gpubot benchmarks", "",
           f"Generated by `{command}` in {wall / 60:.1f} minutes; rerun it to refresh this file "
           "(every figure here is measured by that run, none is typed in, except the dated "
           "earlier findings at the end)."
           + (" **Quick smoke run: small samples.**" if quick else ""), "",
           ("Percentiles are linear between order statistics (numpy's default); with 20 "
           "samples, as in figure 1, p99 lies between the two largest values."), "", "## Machine", "",
           markdown_table(Table("", ["", ""], [[k, v] for k, v in machine.items()], left=2)), "",
           "## Targets", "",
           markdown_table(Table("", ["figure", "target", "measured", "result"],
                                summary_rows(sections), left=4)), ""]
    out += [HOW_TO_RUN, ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        if s.error:
            out += ["Run failed:", "", "```", s.error, "```", ""]
            continue
        out += [s.method, ""]
        for t in s.tables:
            out += [markdown_table(t), ""]
        out += [f"- {n}" for n in s.notes]
        if s.notes:
            out.append("")
    out += [EARLIER_FINDINGS, ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short smoke run (small samples)")
    parser.add_argument("--only", action="append", metavar="NAME", default=[],
                        help=f"run only these figures ({', '.join(NAMES)}); repeat or "
                             "comma-separate")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"Markdown report (default: {DOC.relative_to(ROOT)} for a full "
                             "run; partial and quick runs write none unless given)")
    args = parser.parse_args(argv)
    selected = {n.strip() for item in args.only for n in item.split(",") if n.strip()}
    unknown = selected - set(NAMES)
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(sorted(unknown))}; choose from "
                     f"{', '.join(NAMES)}")
    selected = selected or set(NAMES)
    output = args.output or (DOC if not args.quick and selected == set(NAMES) else None)
    sizes = QUICK if args.quick else FULL
    started = time.monotonic()
    load_at_start = _loadavg()
    sections: list[Section] = []

    docker_version = None
    if selected & (SERVED | {"queue"}):
        from bench.engine import engine_for_bench
        from tests.infra.docker_engine import TEST_IMAGE

        _log("== gpubot serve (" + ", ".join(n for n in NAMES if n in selected
                                             and n in SERVED | {"queue"}) + ")")
        try:
            with engine_for_bench(TEST_IMAGE, log=_log) as engine:
                _log(f"  Docker: {engine.description}")
                docker_version = _engine_version(engine)
                if selected & SERVED:
                    run_served(selected, sizes, sections, engine)
                if "queue" in selected:
                    from bench import queue_handoff

                    _log("\n== queue")
                    sections.append(_measured("queue", lambda: queue_handoff.run(
                        engine, repeats=sizes.handoffs, log=_log)))
        except Exception as exc:  # noqa: BLE001
            sections.append(_failed("served", "gpubot serve", exc))
    if "concurrency" in selected:
        _log("\n== concurrency")
        sections.append(_measured("concurrency", lambda: run_isolated(
            "concurrency", claims=sizes.burst, gpus=sizes.burst_gpus,
            rounds=sizes.burst_rounds)))
    if "ticks" in selected:
        _log("\n== ticks")
        sections.append(_measured("ticks", lambda: run_isolated(
            "ticks", reps=sizes.tick_reps, small_reps=sizes.tick_small_reps)))
    if "access" in selected:
        from bench import access

        _log("\n== access")
        sections.append(_measured("access", lambda: access.run(
            status_reps=10 if args.quick else 50, downloads=1 if args.quick else 5,
            logins=3 if args.quick else 10, claims=sizes.claims, log=_log)))
    if "idle" in selected:
        _log("\n== idle")
        sections.append(_measured("idle", lambda: run_isolated(
            "idle", reps=sizes.idle_reps, small_reps=sizes.idle_small_reps)))
    if "slurm" in selected:
        from bench import slurm

        _log("\n== slurm")
        sections += slurm.run(quick=args.quick, measured=_measured, log=_log)
    grown = growth_section(sections)
    if grown is not None:
        sections.append(grown)

    order = {n: i for i, n in enumerate(NAMES)}
    sections.sort(key=lambda s: order.get(s.key, len(NAMES)))
    from bench import machine

    info = machine.describe()
    info["load average (1/5/15 min)"] = f"{load_at_start} at the start, {_loadavg()} at the end"
    if docker_version:
        info["Docker"] = docker_version
    wall = time.monotonic() - started
    _log("\n" + "=" * 78)
    _log("machine: " + "; ".join(f"{k}: {v}" for k, v in info.items()))
    for s in sections:
        _log(f"\n{s.title}")
        if s.error:
            _log(f"  RUN FAILED: {s.error}")
        for t in s.tables:
            _log(text_table(t))
        for n in s.notes:
            _log(f"  note: {n}")
    from bench.result import Table

    _log("\nTargets")
    _log(text_table(Table("", ["figure", "target", "measured", "result"],
                          summary_rows(sections), left=4)))
    _log(f"\ntotal {wall / 60:.1f} min")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(render_markdown(sections, info, argv, wall, args.quick))
        _log(f"wrote {output}")
    else:
        _log("no report written (partial or quick run; use --output PATH)")
    missed = [t for s in sections for t in s.targets if t.met is False]
    failed = [s for s in sections if s.error]
    return 1 if failed else (2 if missed else 0)


__all__ = ["Target", "main"]
