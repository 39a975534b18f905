"""How ``gpubot doctor`` shows its results: a table, or JSON, and the exit code."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from bot.doctor_types import CheckResult


def render_table(results: list[CheckResult]) -> Table:
    """A rich table; texts are literal (an engine message like ``[[gpu]]`` is no markup)."""
    table = Table(title="gpubot doctor")
    table.add_column("")
    for header in ("check", "detail", "fix"):
        table.add_column(header, overflow="fold")
    for r in results:
        mark = Text("ok", style="green") if r.ok else Text("FAIL", style="bold red")
        table.add_row(mark, Text(r.name), Text(r.detail), Text(r.fix))
    return table


def results_json(results: list[CheckResult]) -> str:
    return json.dumps({"ok": all(r.ok for r in results),
                       "checks": [asdict(r) for r in results]}, indent=2)


def doctor_main(results: list[CheckResult], as_json: bool, console: Console | None = None) -> int:
    """Print the results (a table, or JSON) and return the exit code: 0 only when every
    check passed."""
    out = console or Console()
    if as_json:
        out.file.write(results_json(results) + "\n")
    else:
        out.print(render_table(results))
        failed = sum(not r.ok for r in results)
        out.print("[green]all checks passed[/]" if not failed else
                  f"[bold red]{failed} check(s) failed[/]")
    return 0 if all(r.ok for r in results) else 1
