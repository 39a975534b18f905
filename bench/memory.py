"""Figure 5: resident memory of the served bot process (/proc/<pid>/status)."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from bench.result import Section, Table, Target
from bench.serve import BENCH_USER_IDS, ServedBot

LIMIT_MB = 150.0


def sample(bot: ServedBot, *, samples: int = 5, interval: float = 0.2) -> list[float]:
    """VmRSS in MB, ``samples`` readings ``interval`` apart."""
    out = []
    for i in range(samples):
        if i:
            time.sleep(interval)
        out.append(bot.status("VmRSS") / 1024)
    return out


@dataclass
class Burst:
    n: int
    dm_s: list[float]  # claim sent → access DM, per claim that got one
    failed: list[str]
    rss: list[float]  # after all DMs came, all containers still running
    after_release: list[float]  # once all were released and removed


def burst(bot: ServedBot, client: Any, n: int, *, timeout: float = 240.0) -> Burst:
    """``n`` users claim at once (one envelope after the other, each acked in ~10 ms),
    so every worker thread of the bot starts a container; RSS once all DMs are in;
    then everything is released."""
    slack, users = bot.slack, BENCH_USER_IDS[:n]
    t0 = time.time()
    for user in users:
        slack.slash_command(user, "claim 2h")
    deadline = time.monotonic() + timeout
    while True:
        calls = [c for c in slack.calls() if c.time >= t0]
        dms = [c for c in calls if c.method == "chat.postMessage"
               and str(c.args.get("text") or "").startswith("Your Jupyter on")]
        failed = [str(c.args.get("text")) for c in calls
                  if "could not start" in str(c.args.get("text") or "")]
        if len(dms) + len(failed) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    time.sleep(1)
    rss = sample(bot)
    for user in users:
        slack.slash_command(user, "release")
    while any(client.api.containers(all=True, filters={"label": f"gpubot.user={u}"})
              for u in users):
        if time.monotonic() > deadline + 60:
            raise RuntimeError("burst containers still there a minute after release")
        time.sleep(0.2)
    time.sleep(2)
    return Burst(n, [c.time - t0 for c in dms], failed, rss, sample(bot))


def section(idle: list[float], after: list[float], peak_mb: float, workloads: str,
            spike: Burst | None) -> Section:
    idle_mb, after_mb = statistics.median(idle), statistics.median(after)
    s = Section("memory", "5. Memory of the bot process", method=(
        "VmRSS of the `gpubot serve` process from `/proc/<pid>/status`, each figure the "
        "median of 5 readings 0.2 s apart: *idle* after the Socket Mode connection is up "
        f"and the start-up reconcile had 3 s; then after {workloads} (one at a time) "
        "and 2 s of rest"
        + (f"; then during a burst of {spike.n} claims at once (one per worker thread of "
           "the bot's handler pool, all containers running, read 1 s after the last "
           "access DM) and again once all were released and their containers removed"
           if spike else "")
        + ". VmHWM is the process's peak RSS over its life. MB = 2^20 bytes."))
    rows = [["idle", f"{idle_mb:.1f}", f"{min(idle):.1f}", f"{max(idle):.1f}"],
            ["after the sequential runs", f"{after_mb:.1f}", f"{min(after):.1f}",
             f"{max(after):.1f}"]]
    final = after_mb
    if spike:
        rows.append([f"{spike.n} claims at once, all running", f"{statistics.median(spike.rss):.1f}",
                     f"{min(spike.rss):.1f}", f"{max(spike.rss):.1f}"])
        rows.append(["after releasing them", f"{statistics.median(spike.after_release):.1f}",
                     f"{min(spike.after_release):.1f}", f"{max(spike.after_release):.1f}"])
        final = max(final, statistics.median(spike.rss), statistics.median(spike.after_release))
        s.notes.append(f"burst: {len(spike.dm_s)} of {spike.n} access DMs, slowest "
                       f"{max(spike.dm_s, default=float('nan')):.1f} s after the first "
                       f"claim was sent" + (f"; {len(spike.failed)} failed: "
                                            f"{spike.failed[0][:200]}" if spike.failed else ""))
    rows.append(["VmHWM (peak over the process life)", f"{peak_mb:.1f}", "", ""])
    s.tables.append(Table("VmRSS, MB", ["", "median", "min", "max"], rows))
    s.targets += [
        Target("RSS idle", f"≤ {LIMIT_MB:.0f} MB", f"{idle_mb:.1f} MB", idle_mb <= LIMIT_MB),
        Target("RSS after the runs", f"≤ {LIMIT_MB:.0f} MB",
               f"{final:.1f} MB (highest reading after start; peak {peak_mb:.1f})",
               final <= LIMIT_MB),
    ]
    return s
