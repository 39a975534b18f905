"""What the bot's code asks of Slack, read from its source (no import, no running).

An AST scan of ``bot/`` and ``handlers/`` finds every Web API method the bot calls:

- ``<anything>.chat_postMessage(...)``-style calls: any attribute call whose name is a
  method of slack_sdk's ``WebClient``, mapped to the API method that method posts to
  (read from the ``api_call("...")`` inside slack_sdk's own source, so names like
  ``files_upload_v2`` map right);
- ``<anything>.api_call("method.name", ...)``;
- Bolt listeners (in ``handlers/``) taking a ``say`` argument (``say`` is ``chat.postMessage``);
- calls the frameworks make on the bot's behalf (``FRAMEWORK_CALLS``).

It also finds the Slack features the listeners need: slash commands, events, and whether
anything is interactive (actions, views, shortcuts, options).
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("bot", "handlers")

# Made by slack_bolt / slack_sdk, not by our code, with the bot token.
FRAMEWORK_CALLS = {
    "auth.test": "Bolt's App verifies the bot token at start-up (token_verification_enabled)",
}
# apps.connections.open (Socket Mode) is called with the app-level token, whose scope
# (connections:write) is not part of the manifest, so it is not listed above.

INTERACTIVE_LISTENERS = {"action", "view", "shortcut", "options", "block_action",
                         "view_submission", "view_closed", "block_suggestion"}


@dataclass
class SlackUsage:
    methods: dict[str, set[str]] = field(default_factory=dict)  # method -> where ("file:line")
    commands: set[str] = field(default_factory=set)
    events: set[str] = field(default_factory=set)
    interactive: set[str] = field(default_factory=set)  # "file:line" of each listener

    def call(self, method: str, where: str) -> None:
        self.methods.setdefault(method, set()).add(where)


@cache
def webclient_methods() -> dict[str, tuple[str, ...]]:
    """``WebClient`` attribute name -> the Web API methods it posts to, e.g.
    chat_postMessage -> (chat.postMessage,); a helper with no ``api_call`` of its own that
    calls other such attributes maps to theirs (files_upload_v2 ->
    files.getUploadURLExternal, files.completeUploadExternal)."""
    from slack_sdk import WebClient

    sources = {name: inspect.getsource(member) for name, member in vars(WebClient).items()
               if not name.startswith("_") and callable(member)}
    found: dict[str, tuple[str, ...]] = {}
    for name, source in sources.items():
        match = re.search(r'api_call\(\s*"([\w.]+)"', source)
        if match:
            found[name] = (match.group(1),)
    for name, source in sources.items():
        if name not in found:
            called = [m for other in re.findall(r"self\.(\w+)\(", source)
                      for m in found.get(other, ())]
            if called:
                found[name] = tuple(dict.fromkeys(called))
    return found


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def scan_source(text: str, where: str, usage: SlackUsage, *, listeners: bool = True
                ) -> SlackUsage:
    """Add what one module's source asks of Slack to ``usage``; Bolt listeners too when
    ``listeners`` (only ``handlers/`` has them: ``bot/cli.py``'s Typer ``@x.command``
    decorators are not Slack's)."""
    methods = webclient_methods()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name, at = node.func.attr, f"{where}:{node.lineno}"
            if name == "api_call" and (method := _literal(node.args[0] if node.args else None)):
                usage.call(method, at)
            elif name in methods:
                for method in methods[name]:
                    usage.call(method, at)
        if listeners and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _listener(node, where, usage)
    return usage


def _listener(func: ast.FunctionDef | ast.AsyncFunctionDef, where: str, usage: SlackUsage) -> None:
    """``@app.command("/gpu")``, ``@app.event("x")``, ``@app.action(...)`` and friends."""
    for deco in func.decorator_list:
        if not (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute)):
            continue
        kind, arg = deco.func.attr, _literal(deco.args[0] if deco.args else None)
        at = f"{where}:{deco.lineno}"
        if kind == "command" and arg:
            usage.commands.add(arg)
        elif kind == "event" and arg:
            usage.events.add(arg)
        elif kind in INTERACTIVE_LISTENERS:
            usage.interactive.add(at)
        else:
            continue
        if "say" in {a.arg for a in func.args.args + func.args.kwonlyargs}:
            usage.call("chat.postMessage", at)


def scan_tree(root: Path = ROOT) -> SlackUsage:
    usage = SlackUsage()
    for folder in SOURCE_DIRS:
        for path in sorted((root / folder).rglob("*.py")):
            scan_source(path.read_text(), str(path.relative_to(root)), usage,
                        listeners=folder == "handlers")
    for method, why in FRAMEWORK_CALLS.items():
        usage.call(method, why)
    return usage
