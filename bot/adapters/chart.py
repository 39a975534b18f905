"""The weekly usage chart as a PNG, drawn with matplotlib's Agg backend (no display).

Two panels, side by side in one 1600x800 px image (Slack shows it full width):

- left, a heatmap: one row per GPU, one column per UTC day, coloured by the day's mean
  utilization (0-100 %), that figure and the share of the day it was leased written in
  each cell (leased but idle is the waste to look for); a day without samples (bot
  down, GPU absent) is left grey and says "-";
- right, GPU-hours per user as horizontal bars, most first, coloured like the heatmap
  by their leases' mean utilization and labelled with hours and utilization; more than
  ``MAX_USERS`` people: the rest as one bar.

matplotlib is imported on the first render, so building the bot (CLI, tests) does not
pay for it. pyplot's global state is not used: each render makes its own ``Figure``, so
two renders in two threads do not mix.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from bot.domain.usage import UsageLine, UsageReport, total

WIDTH_PX, HEIGHT_PX, DPI = 1600, 800, 100
MAX_USERS = 12
MAX_GPUS = 32  # rows of the heatmap that stay readable at this size
COLORMAP = "YlGnBu"  # light = idle, dark = busy; readable in grey and by the colour-blind


class MatplotlibChart:
    def __init__(self, name: Callable[[str], str] = str) -> None:
        self.name = name  # user id -> how a person is shown (the id by default)

    def render(self, report: UsageReport) -> bytes:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
        heat, bars = fig.subplots(1, 2, width_ratios=(3, 2))
        fig.suptitle(f"GPU usage {report.first_day:%a %d %b} – {report.until:%a %d %b %Y} "
                     f"(UTC, until {report.until:%H:%M})", fontsize=16, fontweight="bold")
        self._heatmap(heat, report)
        self._bars(bars, report)
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=DPI, facecolor="white")
        return out.getvalue()

    @staticmethod
    def _heatmap(ax, report: UsageReport) -> None:  # type: ignore[no-untyped-def]
        import matplotlib
        import numpy as np

        days, gpus = report.days, report.gpus[:MAX_GPUS]
        ax.set_title("Mean utilization per GPU per day (%), and how much of the day it was "
                     "leased", fontsize=13, loc="left")
        if not gpus:
            ax.text(0.5, 0.5, "No GPU samples in these days", ha="center", va="center",
                    fontsize=13, transform=ax.transAxes)
            ax.set_axis_off()
            return
        grid = np.array([[np.nan if (u := report.util(g, d)) is None else u for d in days]
                         for g in gpus], dtype=float)
        cmap = matplotlib.colormaps[COLORMAP].with_extremes(bad="#dddddd")  # not sampled
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=100,
                          aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(days)), [f"{d:%a}\n{d:%d %b}" for d in days], fontsize=10)
        ax.set_yticks(range(len(gpus)), gpus, fontsize=10 if len(gpus) <= 16 else 8)
        ax.tick_params(length=0)
        ax.set_xticks(np.arange(-0.5, len(days)), minor=True)
        ax.set_yticks(np.arange(-0.5, len(gpus)), minor=True)
        ax.grid(which="minor", color="white", linewidth=2)
        ax.tick_params(which="minor", length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        if len(gpus) <= 16:  # the figures in each cell; too small to read beyond that
            leased = {(g.gpu, g.day): g.leased for g in report.gpu_days}
            for (row, col), value in np.ndenumerate(grid):
                colour = "white" if not np.isnan(value) and value > 60 else "#222222"
                if np.isnan(value):
                    ax.text(col, row, "-", ha="center", va="center", fontsize=11)
                    continue
                ax.text(col, row - 0.1, f"{value:.0f}", ha="center", va="center",
                        fontsize=12, fontweight="bold", color=colour)
                held = leased.get((gpus[row], days[col]), 0.0)  # leased, yet idle: waste
                ax.text(col, row + 0.22, f"leased {held:.0%}", ha="center", va="center",
                        fontsize=7.5, color=colour)
        bar = ax.figure.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
        bar.set_label("utilization %")
        mean = report.mean_gpu_util
        note = f"mean over GPU-days: {mean:.0f} %" if mean is not None else ""
        if len(report.gpus) > MAX_GPUS:
            note += f"; first {MAX_GPUS} of {len(report.gpus)} GPUs shown"
        ax.set_xlabel(f"grey: not sampled · {note}", fontsize=9, color="#555555")

    def _bars(self, ax, report: UsageReport) -> None:  # type: ignore[no-untyped-def]
        lab = report.lab
        ax.set_title(f"GPU-hours per user (total {lab.gpu_hours:.1f}; colour: mean "
                     f"utilization)", fontsize=13, loc="left")
        lines = _top(list(report.users))
        if not lines:
            ax.text(0.5, 0.5, "No leases in these days", ha="center", va="center",
                    fontsize=13, transform=ax.transAxes)
            ax.set_axis_off()
            return
        names = [x.user_id if x.user_id.startswith(OTHERS) else self.name(x.user_id)
                 for x in lines]
        hours = [x.gpu_hours for x in lines]
        rows = range(len(lines))
        import matplotlib

        cmap = matplotlib.colormaps[COLORMAP]  # the heatmap's colours: mean utilization
        ax.barh(rows, hours, height=0.6, edgecolor="#555555", linewidth=0.8,
                color=[cmap((x.mean_util or 0) / 100) for x in lines])
        ax.set_yticks(rows, names, fontsize=10)
        ax.invert_yaxis()  # most first, at the top
        ax.set_xlabel("GPU-hours")
        ax.set_xlim(0, max(hours) * 1.35 or 1)  # room for the labels right of the bars
        ax.grid(axis="x", color="#e5e5e5")
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        for row, line in zip(rows, lines):
            util = "" if line.mean_util is None else f" · {line.mean_util:.0f} % util"
            ax.text(line.gpu_hours, row, f" {line.gpu_hours:.1f} h{util}", va="center",
                    fontsize=9)


OTHERS = "others"


def _top(lines: list[UsageLine]) -> list[UsageLine]:
    lines = sorted(lines, key=lambda x: -x.gpu_hours)
    if len(lines) <= MAX_USERS:
        return lines
    rest = lines[MAX_USERS - 1:]
    return [*lines[:MAX_USERS - 1], total(rest, f"{OTHERS} ({len(rest)})")]
