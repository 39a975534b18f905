"""Block Kit of contention: the queue (its place, the line, leaving it) and idle
reclaim (the warning with its "I'm still using it" button, the reclaim notice). Pure
functions, as in ``handlers.blocks``; the console renders them too."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.domain.containers import EngineWait
from bot.domain.durations import format_duration
from bot.domain.lease import Lease
from handlers.blocks import LEAVE, STILL_USING, Blocks, button, context, receipt, section, when


def asked_for(lease: Lease) -> str:
    gpus = f"{lease.gpu_count} GPUs" if lease.gpu_count > 1 else "1 GPU"
    return gpus + (f" ({lease.gpu_model})" if lease.gpu_model else "")


def queued_message(lease: Lease, place: int | None, *, why: str = "") -> tuple[str, Blocks]:
    where = f"#{place} in the queue" if place else "in the queue"
    text = (f"Lease {lease.id} is {where} for {asked_for(lease)}. I'll DM you when it is "
            f"yours; its {format_duration(lease.duration)} count from then.")
    return text, [section(f":hourglass: {text}"),
                  *([context(why)] if why else []),
                  {"type": "actions", "block_id": f"queue_{lease.id}",
                   "elements": [button("Leave the queue", LEAVE, str(lease.id))]},
                  context("`/gpu queue` shows the line; `/gpu leave` withdraws.")]


def queue_message(line: Sequence[Lease], now: datetime,
                  engine: Sequence[tuple[Lease, EngineWait]] = ()) -> tuple[str, Blocks]:
    cluster = _engine_section(engine)
    if not line:
        text = "Nobody is waiting for a GPU."
        return text, [section(text), *cluster]
    rows = [f"*#{n}* <@{lease.user_id}>: {asked_for(lease)} for "
            f"{format_duration(lease.duration)}, waiting since {when(lease.queued_at)} "
            f"({format_duration(now - (lease.queued_at or now))})"
            for n, lease in enumerate(line, 1)]
    text = f"{len(line)} waiting for a GPU"
    return text, [section(f"*{text}*"), section("\n".join(rows)[:3000]),
                  context("Someone holding no GPU goes ahead of those who hold one; a large "
                          "request that waited an hour reserves a server."), *cluster]


def _engine_section(engine: Sequence[tuple[Lease, EngineWait]]) -> Blocks:
    """Granted leases whose job waits in the cluster scheduler's queue (Slurm)."""
    if not engine:
        return []
    rows = []
    for lease, wait in engine:
        place = f"#{wait.place} of {wait.of} in the cluster's queue" if wait.place else \
            "in the cluster's queue"
        start = f", expected to start {when(wait.expected_start)}" if wait.expected_start else ""
        rows.append(f"<@{lease.user_id}> lease {lease.id}: {place} ({wait.reason}){start}")
    return [section("*Starting, waiting for the cluster*\n" + "\n".join(rows)[:2900])]


def left_queue_text(lease: Lease) -> str:
    return f"Lease {lease.id} left the queue."


def queue_timeout_message(lease: Lease) -> tuple[str, Blocks]:
    text = (f"Your request (lease {lease.id}, {asked_for(lease)}) waited too long in the "
            f"queue and was withdrawn.")
    return text, [section(f":hourglass: {text}"),
                  context("Claim again with `/gpu claim`, or ask an admin about capacity.")]


# ------------------------------------------------------------------ idle reclaim
def idle_warning_message(lease: Lease, reclaim_at: datetime) -> tuple[str, Blocks]:
    text = (f"Lease {lease.id} looks idle (its GPUs unused, Jupyter quiet) while someone "
            f"waits for a GPU: it will be reclaimed {when(reclaim_at)} unless you use it.")
    return text, [section(f":zzz: {text}"),
                  {"type": "actions", "block_id": f"idle_{lease.id}",
                   "elements": [button("I'm still using it", STILL_USING, str(lease.id),
                                       style="primary")]},
                  context("Reclaiming stops Jupyter; your files stay in your workspace.")]


def idle_reclaimed_message(lease: Lease, workspace: str) -> tuple[str, Blocks]:
    text = (f"Lease {lease.id} was idle while others waited for a GPU, so it was reclaimed. "
            f"Your files are kept.")
    return text, [section(f":checkered_flag: {text}"),
                  context(f"They are in `{workspace}` on the server; `/gpu claim` starts a "
                          f"new lease."), context(receipt(lease))]


def still_using_text(lease: Lease) -> str:
    return (f"Lease {lease.id} is yours; idleness counts again from "
            f"{when(lease.snoozed_until)}.")
