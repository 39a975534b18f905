"""Figure 2: Socket Mode ack latency of ``/gpu help`` and ``/gpu status`` against the
real bot process."""

from __future__ import annotations

import time
from typing import Any

from bench.result import Section, Table, Target
from bench.serve import BENCH_USER_IDS, ServedBot
from bench.stats import SUMMARY_HEADER, Summary, row

P99_LIMIT_MS = 100.0
COMMANDS = ("help", "status")


def run(bot: ServedBot, *, count: int, log: Any = print) -> Section:
    slack = bot.slack
    # two untimed envelopes first: the first command of a process imports lazily
    for text in COMMANDS:
        slack.slash_command(BENCH_USER_IDS[0], text)
    ephemerals_before = len(slack.ephemerals())
    latencies: dict[str, list[float]] = {c: [] for c in COMMANDS}
    started = time.monotonic()
    for i in range(count):
        text = COMMANDS[i % len(COMMANDS)]
        env = slack.slash_command(BENCH_USER_IDS[i % len(BENCH_USER_IDS)], text)
        latencies[text].append(env.latency if env.latency is not None else float("nan"))
    wall = time.monotonic() - started
    # every command must also have been answered (response_url), not only acked
    answered = slack.wait_for(lambda: len(slack.ephemerals()) - ephemerals_before >= count
                              and len(slack.ephemerals()) - ephemerals_before,
                              timeout=60, message="not every command got its answer")
    every = [v for vs in latencies.values() for v in vs]
    total = Summary.of(every).scaled(1000)
    log(f"  {count} envelopes in {wall:.1f} s, all {answered} answered")
    section = Section("ack", "2. Slash-command ack latency (Socket Mode)", method=(
        f"{count} slash commands, `/gpu help` and `/gpu status` alternating, sent one "
        "after another (the next as soon as the previous is acked; the answers are "
        "posted to the response_url by the bot's worker pool meanwhile) over the Socket "
        "Mode connection of the real `gpubot serve` process. Latency is the stand-in's "
        "own record: envelope written to the WebSocket → ack received. Two untimed "
        f"commands go first. Wall time for all: {wall:.1f} s; answers received: "
        f"{answered}."))
    section.tables.append(Table("milliseconds", ["", *SUMMARY_HEADER], [
        row("all", total), *(row(f"/gpu {c}", Summary.of(v).scaled(1000))
                             for c, v in latencies.items())]))
    section.targets.append(Target("ack p99", f"≤ {P99_LIMIT_MS:.0f} ms", f"{total.p99:.1f} ms",
                                  total.p99 <= P99_LIMIT_MS))
    return section
