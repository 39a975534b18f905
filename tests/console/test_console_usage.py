"""`/gpu usage` and `/gpu report` in the console: the report's chart cannot be shown in
a terminal, so it is written to a file whose path is printed."""

from __future__ import annotations

import re
from pathlib import Path

from tests.console.test_console_chat import BOB, Chat, chat  # noqa: F401 (fixture)


def test_usage_and_the_report_with_the_path_of_its_chart(chat: Chat) -> None:  # noqa: F811
    assert "Your GPU usage" in chat.say("usage") and "The lab" in chat.say("usage")
    said = chat.say("report")
    assert "GPU usage" in said and "in the admin channel" in said
    path = Path(re.search(r"Chart: (\S+\.png)", said).group(1))  # type: ignore[union-attr]
    try:
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert path.stat().st_mode & 0o077 == 0  # mkstemp: only the bot's user reads it
    finally:
        path.unlink()
    chat.say(f":user {BOB}")
    assert "Only a gpubot admin" in chat.say("report")
