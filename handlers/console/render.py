"""Block Kit → terminal text.

The console shows the very blocks the Slack side builds (``handlers/blocks.py``), so each
message has one source of truth. mrkdwn becomes plain text: ``*bold*``, ``_italic_`` and
``~strike~`` lose their markers, ``<@U123>`` becomes ``U123``, ``<url|label>`` becomes
``label (url)``, dates show their fallback, known emoji codes become the emoji. Buttons
become numbered choices; URL buttons are links, printed with their address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

Blocks = list[dict[str, Any]]

EMOJI = {
    "white_check_mark": "✅", "x": "❌", "warning": "⚠️", "hourglass": "⌛",
    "hourglass_flowing_sand": "⏳", "alarm_clock": "⏰", "checkered_flag": "🏁",
    "raising_hand": "🙋", "no_entry": "⛔", "red_circle": "🔴",
    "large_green_circle": "🟢", "large_orange_circle": "🟠", "leftwards_arrow_with_hook": "↩️",
    "zzz": "💤", "bar_chart": "📊",
}
_CODE = re.compile(r"```(.*?)```|`([^`\n]+)`", re.DOTALL)
_ANGLE = re.compile(r"<([^<>\n]+)>")
_MARK = {ch: re.compile(rf"(?<![\w{ch}]){re.escape(ch)}(?!\s)([^{ch}\n]+?)(?<!\s)"
                        rf"{re.escape(ch)}(?![\w{ch}])") for ch in "*_~"}
_EMOJI = re.compile(r":([a-z0-9_+-]+):")
_HOLE = "\ue000"  # private-use characters stand for code spans and <…> tokens meanwhile


@dataclass(frozen=True)
class Choice:
    """A button that is not a link: picking it runs its action."""

    label: str
    action_id: str
    value: str = ""
    confirm: dict[str, Any] | None = None


@dataclass
class Rendered:
    lines: list[str] = field(default_factory=list)
    choices: list[Choice] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class Field:
    """One input of a modal, asked in turn."""

    block_id: str
    action_id: str
    label: str
    optional: bool = False
    max_length: int | None = None


# ------------------------------------------------------------------- mrkdwn
def _angle(token: str) -> str:
    """``<…>``: a mention, a channel, a special, a date or a link."""
    target, _, label = token.partition("|")
    if target.startswith("@"):
        return target[1:]
    if target.startswith("#"):
        return f"#{label or target[1:]}"
    if target.startswith("!date^"):
        return label or target
    if target.startswith("!subteam^"):
        return label or "@group"
    if target.startswith("!"):
        return f"@{target[1:]}"
    address = target.removeprefix("mailto:")
    return address if not label or label == address else f"{mrkdwn(label)} ({address})"


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def mrkdwn(text: str) -> str:
    """Slack mrkdwn → plain text; code spans are kept verbatim, without their backticks."""
    holes: list[str] = []

    def hole(value: str) -> str:
        holes.append(value)
        return f"{_HOLE}{len(holes) - 1}{_HOLE}"

    text = _CODE.sub(lambda m: hole(_unescape(m.group(1) if m.group(1) is not None
                                               else m.group(2)).strip("\n")), text)
    text = _ANGLE.sub(lambda m: hole(_angle(_unescape(m.group(1)))), text)
    for pattern in _MARK.values():
        text = pattern.sub(r"\1", text)
    text = _EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), _unescape(text))
    return re.sub(f"{_HOLE}([0-9]+){_HOLE}", lambda m: holes[int(m.group(1))], text)


def plain(obj: dict[str, Any] | str | None) -> str:
    """A Block Kit text object (``plain_text`` or ``mrkdwn``) as plain text."""
    if obj is None:
        return ""
    if isinstance(obj, str):
        return mrkdwn(obj)
    if obj.get("type") == "mrkdwn":
        return mrkdwn(obj.get("text", ""))
    return str(obj.get("text", ""))


# ------------------------------------------------------------------- blocks
def render(text: str, blocks: Blocks | None) -> Rendered:
    """A message as Slack would show it: its blocks, else its ``text``."""
    out = Rendered()
    if not blocks:
        out.lines = plain({"type": "mrkdwn", "text": text}).splitlines() or [""]
        return out
    for block in blocks:
        kind = block.get("type")
        if kind == "section":
            _section(block, out)
        elif kind == "context":
            parts = [plain(e) if e.get("type") != "image" else f"[{e.get('alt_text', 'image')}]"
                     for e in block.get("elements", [])]
            out.lines += [f"  {line}" for line in "  ".join(parts).splitlines()]
        elif kind == "actions":
            _elements(block.get("elements", []), out)
        elif kind == "header":
            out.lines.append(f"── {plain(block.get('text'))} ──")
        elif kind == "divider":
            out.lines.append("─" * 24)
        elif kind == "image":
            out.lines.append(f"[image: {block.get('alt_text', '')}]")
        elif kind == "input":
            continue  # only modals have inputs; ``modal_fields`` asks them
        else:
            out.lines.append(f"[{kind} block: open Slack to see it]")
    return out


def _section(block: dict[str, Any], out: Rendered) -> None:
    if block.get("text"):
        out.lines += plain(block["text"]).splitlines()
    for item in block.get("fields", []):
        label, *rest = plain(item).splitlines() or [""]
        out.lines.append(f"{label}: {' '.join(rest)}" if rest else label)
    if block.get("accessory"):
        _elements([block["accessory"]], out)


def _elements(elements: list[dict[str, Any]], out: Rendered) -> None:
    buttons, links = [], []
    for element in elements:
        if element.get("type") != "button":
            links.append(f"({element.get('type')}: open Slack to use it)")
            continue
        label = plain(element.get("text"))
        if element.get("url"):
            links.append(f"{label}: {element['url']}")
            continue
        out.choices.append(Choice(label, element.get("action_id", ""),
                                  element.get("value", ""), element.get("confirm")))
        buttons.append(f"[{len(out.choices)}] {label}")
    if buttons:
        out.lines.append("   ".join(buttons))
    out.lines += links


# ------------------------------------------------------------------- modals
def modal_fields(view: dict[str, Any]) -> list[Field]:
    """The inputs of a modal view, in order."""
    fields = []
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        element = block.get("element", {})
        fields.append(Field(block.get("block_id", ""), element.get("action_id", ""),
                            plain(block.get("label")), bool(block.get("optional")),
                            element.get("max_length")))
    return fields


def confirm_question(confirm: dict[str, Any]) -> str:
    """A button's confirm dialog as one question."""
    return (f"{plain(confirm.get('title'))} {plain(confirm.get('text'))} "
            f"[{plain(confirm.get('confirm')) or 'yes'}: y / "
            f"{plain(confirm.get('deny')) or 'no'}: n] ")
