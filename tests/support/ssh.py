"""The real OpenSSH client (Debian openssh-client) against a lease's sshd: key pairs made
by ``ssh-keygen``, logins and copies through ``ssh``/``scp`` with nothing from the
user's own ~/.ssh (``-F`` a config of the test's, its own known_hosts, BatchMode: never
a prompt). Missing tools skip on a laptop and fail under CI=true."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.engines import need

TOOLS = ("ssh", "scp", "ssh-keygen", "ssh-keyscan")


def require_client() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    need(not missing, f"OpenSSH client tools missing: {', '.join(missing)}",
         "apt-get install openssh-client")


@dataclass(frozen=True)
class KeyPair:
    private: Path

    @property
    def public_line(self) -> str:
        return Path(f"{self.private}.pub").read_text().strip()


def keypair(folder: Path, name: str, kind: str = "ed25519") -> KeyPair:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"{name}@test", "-f",
                    str(path)], check=True)
    return KeyPair(path)


@dataclass
class Client:
    """``ssh``/``scp`` to 127.0.0.1:port as ``login`` with one key, checking the host key
    against ``known_hosts`` (StrictHostKeyChecking=yes) under ``alias``."""

    port: int
    login: str
    key: KeyPair | None
    known_hosts: Path
    alias: str
    host: str = "127.0.0.1"

    def options(self, *extra: str) -> list[str]:
        opts = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-o", f"HostKeyAlias={self.alias}",
                "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "LogLevel=ERROR"]
        if self.key is not None:
            opts += ["-i", str(self.key.private)]
        return opts + list(extra)

    def ssh(self, command: str, *extra: str, login: str | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ssh", *self.options(*extra), "-p", str(self.port),
                               f"{login or self.login}@{self.host}", command],
                              capture_output=True, text=True, timeout=timeout)

    def scp(self, source: Path, target: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["scp", *self.options(*extra), "-P", str(self.port), str(source),
                               f"{self.login}@{self.host}:{target}"],
                              capture_output=True, text=True, timeout=60)


def keyscan(port: int, host: str = "127.0.0.1") -> list[str]:
    """The ed25519 host key lines sshd presents (``ssh-keyscan``)."""
    out = subprocess.run(["ssh-keyscan", "-T", "10", "-t", "ed25519", "-p", str(port), host],
                         capture_output=True, text=True, timeout=30).stdout
    return [line for line in out.splitlines() if line and not line.startswith("#")]


def wait_for_banner(port: int, host: str = "127.0.0.1", timeout: float = 60) -> None:
    """Until sshd answers with its SSH banner (the port may accept before sshd does:
    docker-proxy listens for the container)."""
    deadline, last = time.monotonic() + timeout, "nothing"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                banner = sock.recv(64)
                if banner.startswith(b"SSH-2.0-"):
                    return
                last = repr(banner)
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise AssertionError(f"no sshd on {host}:{port} within {timeout:.0f} s: {last}")
