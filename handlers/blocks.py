"""Block Kit for every message, modal and the App Home. Pure functions returning dicts.

Action ids are constants so handlers and renderers agree. The password appears only in
``access_message`` blocks, never in any ``text`` fallback (that is what notifications
and previews show).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.domain.durations import format_duration
from bot.domain.containers import ContainerState, what_happened
from bot.domain.lease import Lease, LeaseStatus
from bot.domain.ssh import SshAccess
from bot.services.views import GpuRow, GpuState, LeaseRow
from handlers.errors import mention
from handlers.grammar import HELP_EXAMPLES
from handlers.keys import ssh_blocks, ssh_text

EXTEND, RELEASE, APPROVE, DENY, OPEN = ("gpu_extend", "gpu_release", "gpu_approve",
                                        "gpu_deny", "gpu_open")
LEAVE, STILL_USING = "gpu_leave", "gpu_still_using"
DENY_MODAL, DENY_REASON = "gpu_deny_modal", "gpu_deny_reason"
Blocks = list[dict[str, Any]]
GIB = 1024**3


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def button(text: str, action_id: str, value: str = "", *, style: str | None = None,
           url: str | None = None, confirm: dict[str, Any] | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": text},
                               "action_id": action_id}
    if value:
        element["value"] = value
    if style:
        element["style"] = style
    if url:
        element["url"] = url
    if confirm:
        element["confirm"] = confirm
    return element


def lease_buttons(lease: Lease, *, extend_by: timedelta, url: str | None = None,
                  block_id: str | None = None) -> dict[str, Any]:
    value = str(lease.id)
    elements = [button("Open Jupyter", OPEN, url=url)] if url else []
    elements += [
        button(f"Extend {format_duration(extend_by)}", EXTEND, value),
        button("Release", RELEASE, value, style="danger", confirm={
            "title": {"type": "plain_text", "text": "Release this GPU?"},
            "text": {"type": "mrkdwn", "text": "Jupyter stops. Your files in the workspace "
                                               "stay for your next lease."},
            "confirm": {"type": "plain_text", "text": "Release"},
            "deny": {"type": "plain_text", "text": "Keep it"}}),
    ]
    block: dict[str, Any] = {"type": "actions", "elements": elements}
    if block_id:
        block["block_id"] = block_id
    return block


def when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{moment:%Y-%m-%d %H:%M} UTC>"


# ------------------------------------------------------------------ messages
def released_text(lease: Lease) -> str:
    return f"Lease {lease.id} released. Your files stay in your workspace."


def extended_text(lease: Lease) -> str:
    return f"Lease {lease.id} now ends {when(lease.expires_at)}."


def help_message(note: str | None = None) -> tuple[str, Blocks]:
    lines = "\n".join(f"`{cmd}`  {what}" for cmd, what in HELP_EXAMPLES)
    intro = f"{note} " if note else ""
    text = f"{intro}Here is what I can do:"
    return text, [section(text), section(lines),
                  context("Durations: `90m`, `24h`, `3d`, `1w`, `1d12h`. Lease numbers come "
                          "from `/gpu mine`.")]


def access_message(lease: Lease, *, url: str, password: str, gpus: str,
                   extend_by: timedelta, ssh: SshAccess | None = None) -> tuple[str, Blocks]:
    what = "Your GPU is ready: your Jupyter" if lease.queued_at else "Your Jupyter"
    text = f"{what} on {gpus} is ready: {url}" + ssh_text(ssh)
    return text, [
        section(f":white_check_mark: *{what} on {gpus} is ready* (lease {lease.id})"),
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*URL*\n<{url}|{url}>"},
            {"type": "mrkdwn", "text": f"*Password*\n`{password}`"},
            {"type": "mrkdwn", "text": f"*Until*\n{when(lease.expires_at)}"},
            {"type": "mrkdwn", "text": "*Workspace*\n`/workspace` (kept after the lease)"},
        ]},
        *ssh_blocks(ssh),  # GPUBOT_SSH: the command, ~/.ssh/config, the host key
        lease_buttons(lease, extend_by=extend_by, url=url),
        context("Keep the password to yourself. `/gpu password` sends it again."),
    ]


def progress_message(lease: Lease, text: str) -> tuple[str, Blocks]:
    return text, [section(f":hourglass_flowing_sand: {text}"), context(f"Lease {lease.id}")]


def failed_message(lease: Lease, reason: str) -> tuple[str, Blocks]:
    text = f"Lease {lease.id} could not start: {reason}"
    return text, [section(f":x: {text}"),
                  context("Nothing is left running and the GPU is free again. Try "
                          "`/gpu claim` again, or ask an admin if it keeps failing.")]


def approval_request(lease: Lease) -> tuple[str, Blocks]:
    what = (f"{lease.gpu_count} GPUs" if lease.gpu_count > 1 else "a GPU") + \
        (f" ({lease.gpu_model})" if lease.gpu_model else "")
    text = f"<@{lease.user_id}> asks for {what} for {format_duration(lease.duration)}"
    value = str(lease.id)
    return text, [section(f":raising_hand: {text} (lease {lease.id})."),
                  {"type": "actions", "block_id": f"approval_{lease.id}", "elements": [
                      button("Approve", APPROVE, value, style="primary"),
                      button("Deny", DENY, value, style="danger")]}]


def approval_outcome(lease: Lease, *, approved: bool, by: str, reason: str | None
                     ) -> tuple[str, Blocks]:
    what = (f"{lease.gpu_count} GPUs" if lease.gpu_count > 1 else "a GPU")
    verdict = "approved" if approved else "denied"
    text = (f"<@{lease.user_id}>'s request for {what} for {format_duration(lease.duration)} "
            f"(lease {lease.id}) was {verdict} by {mention(by)}")
    blocks = [section(f"{':white_check_mark:' if approved else ':no_entry:'} {text}.")]
    if reason:
        blocks.append(context(f"Reason: {reason}"))
    return text, blocks


def decision_dm(lease: Lease, *, approved: bool, by: str, reason: str | None
                ) -> tuple[str, Blocks]:
    if approved and lease.status is LeaseStatus.QUEUED:
        text = (f"Your request (lease {lease.id}) was approved by {mention(by)}; no GPU is "
                f"free right now, so it waits in the queue (`/gpu queue`). I'll DM you when "
                f"it is yours.")
    elif approved:
        text = f"Your request (lease {lease.id}) was approved by {mention(by)}; starting it now."
    else:
        text = (f"Your request (lease {lease.id}) was denied by {mention(by)}"
                f"{': ' + reason if reason else '.'}")
    return text, [section(text)]


def waiting_for_approval(lease: Lease) -> tuple[str, Blocks]:
    text = (f"Lease {lease.id} ({format_duration(lease.duration)}, {lease.gpu_count} GPU"
            f"{'s' if lease.gpu_count > 1 else ''}) needs an admin's approval; I'll DM you "
            f"the decision.")
    return text, [section(f":hourglass: {text}")]


def reminder_message(lease: Lease, remaining: timedelta, *, extend_by: timedelta
                     ) -> tuple[str, Blocks]:
    text = f"Lease {lease.id} ends in {format_duration(remaining)}."
    return text, [section(f":alarm_clock: {text} Save your work, or extend it."),
                  lease_buttons(lease, extend_by=extend_by)]


def receipt(lease: Lease, now: datetime | None = None) -> str:
    """What a lease used: GPU-hours, mean and peak utilization, peak memory, idle share."""
    start, end = lease.started_at, lease.ended_at or now
    hours = ((end - start).total_seconds() / 3600 * lease.gpu_count) if start and end else 0.0
    parts = [f"{hours:.1f} GPU-hours"]
    if lease.util_samples:
        parts += [f"utilization mean {lease.util_sum / lease.util_samples:.0f} %, peak "
                  f"{lease.util_peak} %", f"peak memory {lease.mem_peak_mib / 1024:.1f} GiB",
                  f"idle {100 * lease.idle_samples / lease.util_samples:.0f} % of samples"]
    return "Receipt: " + "; ".join(parts) + "."


def expired_message(lease: Lease, workspace: str) -> tuple[str, Blocks]:
    text = f"Lease {lease.id} has ended and its Jupyter stopped. Your files are kept."
    return text, [section(f":checkered_flag: {text}"),
                  context(f"They are in `{workspace}` on the server, and in `/workspace` of "
                          f"your next lease."), context(receipt(lease))]


def died_message(lease: Lease, state: ContainerState) -> tuple[str, Blocks]:
    text = f"Lease {lease.id}: your Jupyter container {what_happened(state)}."
    return text, [section(f":warning: {text}"),
                  context("Your files are kept. `/gpu claim` starts a new one."),
                  context(receipt(lease))]


# ------------------------------------------------------------- status views
def gpu_lines(rows: Sequence[GpuRow], now: datetime) -> list[str]:
    lines = []
    for row in rows:
        g = row.gpu
        used = f"{(g.memory_used_bytes or 0) / GIB:.0f}/{(g.memory_total_bytes or 0) / GIB:.0f} GiB" \
            if g.memory_total_bytes else "mem ?"
        util = f"{g.utilization_percent}%" if g.utilization_percent is not None else "?%"
        if row.state is GpuState.LEASED and row.lease is not None:
            left = row.lease.remaining(now)
            state = (f"<@{row.lease.user_id}> until {when(row.lease.expires_at)}"
                     f"{' (' + format_duration(left) + ' left)' if left else ''}"
                     f"{idle_note(row.lease, now)}")
        elif row.state is GpuState.UNHEALTHY:
            state = f":red_circle: unhealthy ({g.health_reason or 'unknown'})"
        elif row.state is GpuState.BUSY:
            state = ":large_orange_circle: busy outside gpubot"
        else:
            state = ":large_green_circle: free"
        procs = "" if g.processes_known else " · processes unknown"
        lines.append(f"*GPU {g.index}* {g.name} · {state} · util {util} · {used}{procs}")
    return lines


def idle_note(lease: Lease, now: datetime) -> str:
    if lease.idle_since is None or now - lease.idle_since < timedelta(minutes=1):
        return ""
    return f" · :zzz: idle {format_duration(now - lease.idle_since)}"


def status_message(rows: Sequence[GpuRow], now: datetime, *, waiting: int = 0
                   ) -> tuple[str, Blocks]:
    free = sum(1 for r in rows if r.state is GpuState.FREE)
    text = f"{free} of {len(rows)} GPUs free"
    line = [context(f"{waiting} waiting in the queue (`/gpu queue`).")] if waiting else []
    return text, [section(f"*{text}*"), *_chunks(gpu_lines(rows, now)), *line]


def mine_message(rows: Sequence[LeaseRow], now: datetime, *, extend_by: timedelta,
                 workspace_bytes: int | None = None) -> tuple[str, Blocks]:
    used = ([context(f"Your workspace holds {workspace_bytes / GIB:.1f} GiB.")]
            if workspace_bytes is not None else [])
    if not rows:
        return "You have no open lease.", [section("You have no open lease. `/gpu claim 24h` "
                                                   "starts one."), *used]
    blocks: Blocks = []
    for row in rows[:10]:
        blocks += lease_summary(row, now, extend_by=extend_by)
    return f"You have {len(rows)} open lease(s).", blocks + used


def lease_summary(row: LeaseRow, now: datetime, *, extend_by: timedelta) -> Blocks:
    lease = row.lease
    gpus = ", ".join(row.gpu_labels) or "no GPU yet"
    status = {LeaseStatus.PENDING_APPROVAL: "waiting for an admin",
              LeaseStatus.STARTING: "starting",
              LeaseStatus.QUEUED: f"#{row.place} in the queue" if row.place else "queued",
              }.get(lease.status, lease.status.value)
    blocks: Blocks = [section(f"*Lease {lease.id}* · {gpus} · {status} · "
                              f"{row.time_left(now)} left{idle_note(lease, now)}")]
    if lease.status is LeaseStatus.ACTIVE:
        blocks.append(lease_buttons(lease, extend_by=extend_by, block_id=f"lease_{lease.id}"))
    return blocks


def home_view(mine: Sequence[LeaseRow], gpus: Sequence[GpuRow], now: datetime, *,
              extend_by: timedelta) -> dict[str, Any]:
    free = sum(1 for r in gpus if r.state is GpuState.FREE)
    blocks: Blocks = [{"type": "header", "text": {"type": "plain_text", "text": "gpubot"}},
                      section(f"*{free} of {len(gpus)} GPUs free.* `/gpu claim 24h` takes one.")]
    blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Your leases"}})
    if mine:
        for row in mine[:10]:
            blocks += lease_summary(row, now, extend_by=extend_by)
    else:
        blocks.append(section("You have no open lease."))
    blocks.append({"type": "header", "text": {"type": "plain_text", "text": "GPUs"}})
    blocks += _chunks(gpu_lines(gpus, now))
    return {"type": "home", "blocks": blocks[:100]}


def deny_modal(lease_id: int, private_metadata: str) -> dict[str, Any]:
    return {"type": "modal", "callback_id": DENY_MODAL, "private_metadata": private_metadata,
            "title": {"type": "plain_text", "text": f"Deny lease {lease_id}"[:24]},
            "submit": {"type": "plain_text", "text": "Deny"},
            "close": {"type": "plain_text", "text": "Cancel"},
            "blocks": [{"type": "input", "block_id": DENY_REASON,
                        "label": {"type": "plain_text", "text": "Reason (sent to the requester)"},
                        "element": {"type": "plain_text_input", "action_id": DENY_REASON,
                                    "multiline": True, "max_length": 500}}]}


def _chunks(lines: Sequence[str], limit: int = 2900) -> Blocks:
    """Lines packed into sections under Slack's 3000-character limit."""
    blocks, current = [], ""
    for line in lines:
        if current and len(current) + len(line) + 1 > limit:
            blocks.append(section(current))
            current = ""
        current = f"{current}\n{line}" if current else line[:limit]
    if current:
        blocks.append(section(current))
    return blocks or [section("No GPUs found.")]
