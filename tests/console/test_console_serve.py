"""`scripts/serve` on its embedded default: no Slack tokens → the console (SQLite,
workspaces and log in the working directory; synthetic GPUs without NVML; without a
Docker engine, how to get one). With tokens it is `gpubot serve`, unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.domain.errors import GpuBackendUnavailable
from tests.support.tmux import Terminal

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
# Explicitly empty, so a developer's .env cannot connect these tests to a real Slack.
NO_SLACK = {"SLACK_BOT_TOKEN": "", "SLACK_APP_TOKEN": "", "SLACK_SIGNING_SECRET": ""}


def nvml_present() -> bool:
    from bot.adapters.nvml import NvmlInventory

    try:
        NvmlInventory(host="probe").list_gpus()
    except GpuBackendUnavailable:
        return False
    return True


def base_env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8",
            "TERM": "xterm-256color", "PYTHONUNBUFFERED": "1", **NO_SLACK}


def test_no_tokens_in_a_terminal_starts_the_console_on_embedded_defaults(tmp_path: Path
                                                                          ) -> None:
    env = {**base_env(tmp_path), "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    term = Terminal(tmp_path)
    try:
        term.start([sys.executable, "-m", "bot", "start"], env=env, cwd=tmp_path)
        screen = str(term.wait_for(lambda s: "(admin)>" in s and s, timeout=60))
        first = screen.splitlines()[0]
        assert first.startswith("No Slack tokens (SLACK_BOT_TOKEN is not set): starting the "
                                "console")
        if not nvml_present():
            assert "No NVML here" in screen and "GPUBOT_FAKE_GPUS=2" in screen
            assert "!! SYNTHETIC GPUs: 2 made-up GPUs" in screen
        assert "No Docker engine reachable" in screen
        assert "sudo apt-get install docker.io" in screen  # how to get one
        assert "help, status, mine and approvals work" in screen  # what works meanwhile
        assert f"Database sqlite:///gpubot.db; workspaces in {tmp_path}/workspaces" in screen

        mark = len(term.screen().rstrip())
        term.type("claim 1h")
        term.wait_for(r"could not start: No Docker engine is reachable on this machine, so "
                      r"Jupyter cannot start: install Docker", after=mark)
        term.type("status")
        term.wait_for(r"GPUs free", after=mark)
        term.keys("C-d")
        assert term.wait_exit() == 0
    finally:
        term.close()
    assert (tmp_path / "gpubot.db").is_file() and (tmp_path / "gpubot-console.log").is_file()


def serve_script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real scripts/serve (it runs in the repository; both cases stop before writing
    anything there)."""
    return subprocess.run([str(REPO / "scripts" / "serve")], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)


def test_without_a_terminal_it_says_what_is_missing(tmp_path: Path) -> None:
    done = serve_script(base_env(tmp_path))
    assert done.returncode == 2, done.stderr
    assert "SLACK_BOT_TOKEN is not set" in done.stderr  # serve's own message: no console


def test_with_a_token_nothing_changes(tmp_path: Path) -> None:
    done = serve_script({**base_env(tmp_path), "SLACK_BOT_TOKEN": "xoxb-not-a-real-token"})
    assert done.returncode == 2, done.stderr
    assert "Set SLACK_APP_TOKEN (xapp-…, Socket Mode) or SLACK_SIGNING_SECRET" in done.stderr
    assert "console" not in done.stdout + done.stderr
