"""A program in a real terminal: tmux on a private socket, driven by send-keys and read
by capture-pane (the whole scrollback, wrapped lines joined)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.tools import tool


class Terminal:
    def __init__(self, workdir: Path, *, width: int = 250, height: int = 60) -> None:
        self.tmux = tool("tmux", "tmux")
        self.socket = workdir / "tmux.sock"
        self.conf = workdir / "tmux.conf"
        # remain-on-exit: the pane (and what it printed) stays for the test to read
        self.conf.write_text("set -g remain-on-exit on\nset -g history-limit 100000\n")
        self.size = (width, height)
        self.target = "console"
        self.status_file = workdir / "tmux.exit-status"

    def _tmux(self, *args: str, check: bool = True) -> str:
        done = subprocess.run([self.tmux, "-S", str(self.socket), "-f", str(self.conf), *args],
                              capture_output=True, text=True, timeout=30)
        if check and done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def start(self, argv: list[str], *, env: dict[str, str], cwd: Path) -> None:
        """Run ``argv`` with exactly ``env`` (tmux's own environment does not leak in).
        The shell around it writes the exit status to a file: tmux 3.3 at times leaves a
        pane whose program exited undead (the process a zombie) for minutes."""
        self.status_file.unlink(missing_ok=True)
        command = "env -i " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) \
            + " " + " ".join(shlex.quote(a) for a in argv) \
            + f"; echo $? > {shlex.quote(str(self.status_file))}"
        self._tmux("new-session", "-d", "-s", self.target, "-x", str(self.size[0]),
                   "-y", str(self.size[1]), "-c", str(cwd), command)

    def type(self, text: str, *, enter: bool = True) -> None:
        self._tmux("send-keys", "-t", self.target, "-l", text)
        if enter:
            self.keys("Enter")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.target, *keys)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-J", "-S", "-", "-E", "-", "-t", self.target)

    def wait_for(self, pattern: str | Callable[[str], object], *, timeout: float = 30,
                 after: int = 0) -> re.Match[str] | object:
        """The first match of ``pattern`` (a regex, or a predicate of the screen text)
        in the screen from character ``after`` on."""
        deadline, text = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            text = self.screen()
            found = (re.search(pattern, text[after:]) if isinstance(pattern, str)
                     else pattern(text[after:]))
            if found:
                return found
            if self.exit_status() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"not on the screen: {pattern!r}\n----- screen -----\n{text}")

    def exit_status(self) -> int | None:
        """The program's exit status once it ended, else None."""
        try:
            text = self.status_file.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text else None

    def wait_exit(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.exit_status()
            if status is not None:
                return status
            time.sleep(0.2)
        raise AssertionError(f"still running after {timeout}s:\n{self.screen()}")

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the program (the child of the pane's shell)."""
        shell = self._tmux("display-message", "-p", "-t", self.target, "#{pane_pid}").strip()
        children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
        assert children, "the program is not running"
        os.kill(int(children[0]), signum)

    def close(self) -> None:
        self._tmux("kill-server", check=False)
