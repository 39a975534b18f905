"""Block Kit for `/gpu envs`: the environments offered (DESIGN §4.1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.services.environments import EnvironmentRow

Blocks = list[dict[str, Any]]


def environments_message(rows: Sequence[EnvironmentRow]) -> tuple[str, Blocks]:
    if not rows:
        return "No environment is offered.", [_section("No environment is offered.")]
    lines = []
    for row in rows:
        mark = {True: ":white_check_mark:", False: ":x:", None: ":grey_question:"}[row.runs]
        cuda = f"CUDA {row.cuda}" if row.cuda and row.cuda.lower() != "none" else (
            "CPU only" if row.cuda else "CUDA not stated")
        default = " (default)" if row.default else ""
        lines.append(f"{mark} *{row.name}*{default}: `{row.image}`, {cuda}; {row.note}")
    names = ", ".join(row.name for row in rows)
    text = f"{len(rows)} environment(s): {names}"
    return text, [_section(f"*{text}*"), _section("\n".join(lines)[:3000]),
                  {"type": "context", "elements": [{"type": "mrkdwn", "text":
                   f"Pick one with `/gpu claim 24h env {rows[0].name}`; without `env` you get "
                   f"{rows[0].name}."}]}]


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}
