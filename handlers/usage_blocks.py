"""Block Kit and text for usage: ``/gpu usage`` and the report's comment (issue 12.3,
12.4). Pure functions, shared with the console like ``handlers.blocks`` (kept apart only
because that module is long enough)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain.usage import UsageLine, UsageReport, UsageWindow, total
from handlers.blocks import Blocks, _chunks, context, section

LAB_LINES = 40  # people listed per window; the rest are summed in one line
TOP_IN_REPORT = 5


def _util(line: UsageLine) -> str:
    return "not sampled" if line.mean_util is None else f"mean utilization {line.mean_util:.0f} %"


def _leases(n: int) -> str:
    return f"{n} lease{'' if n == 1 else 's'}"


def usage_line(line: UsageLine) -> str:
    return f"{line.gpu_hours:.1f} GPU-hours, {_leases(line.leases)}, {_util(line)}"


def usage_message(windows: Sequence[UsageWindow]) -> tuple[str, Blocks]:
    """Yours per window; for an admin then the lab's per window, by user."""
    text = "Your GPU usage: " + "; ".join(
        f"{w.mine.gpu_hours:.1f} GPU-hours in {w.days} days" for w in windows)
    mine = "\n".join(f"*Last {w.days} days:* " + (usage_line(w.mine) if w.mine.leases
                                                  else "no leases")
                     for w in windows)
    blocks: Blocks = [section("*Your GPU usage*"), section(mine)]
    for w in windows:
        if w.lab is None:
            continue
        lab = total(w.lab)
        blocks.append(section(f"*The lab, last {w.days} days:* {usage_line(lab)}, "
                              f"{len(w.lab)} {'person' if len(w.lab) == 1 else 'people'}"))
        if w.lab:
            shown, rest = list(w.lab[:LAB_LINES]), w.lab[LAB_LINES:]
            lines = [f"<@{x.user_id}> {usage_line(x)}" for x in shown]
            if rest:
                lines.append(f"…and {len(rest)} more: {usage_line(total(rest))}")
            blocks += _chunks(lines)
    blocks.append(context("GPU-hours: the time each lease held its GPUs, times their number. "
                          "Utilization: the mean of the samples taken every tick."))
    return text, blocks[:50]


def report_title(report: UsageReport) -> str:
    return (f"GPU usage {report.first_day:%a %d %b} – {report.until:%a %d %b %Y} (UTC)")


def report_comment(report: UsageReport) -> str:
    """The message the chart is shared with (mrkdwn)."""
    lab = report.lab
    busy = report.mean_gpu_util
    parts = [f":bar_chart: *{report_title(report)}*, today until {report.until:%H:%M}: "
             f"{lab.gpu_hours:.1f} GPU-hours by {len(report.users)} "
             f"{'person' if len(report.users) == 1 else 'people'} over {_leases(lab.leases)}"]
    if busy is not None:
        parts.append(f"the GPUs were {busy:.0f} % busy on average ({len(report.gpus)} GPUs)")
    text = "; ".join(parts) + "."
    if report.users:
        text += "\nMost GPU-hours: " + ", ".join(
            f"<@{x.user_id}> {x.gpu_hours:.1f} h"
            + ("" if x.mean_util is None else f" ({x.mean_util:.0f} %)")
            for x in report.users[:TOP_IN_REPORT])
    return text


def report_alt_text(report: UsageReport) -> str:
    """What a screen reader says for the chart (Slack's limit: 1000 characters)."""
    return (f"Heatmap of mean utilization per GPU per day for {len(report.gpus)} GPUs, and "
            f"bars of GPU-hours per user for {len(report.users)} people, "
            f"{report_title(report)}.")[:1000]


def report_posted_text(report: UsageReport) -> str:
    return (f"The usage report for {report.first_day:%a %d %b} – {report.until:%a %d %b} is "
            f"in the admin channel.")
