"""Command-line tools a test needs (systemd-analyze, docker compose, prometheus).

A missing tool is installed from Debian when the tests run as root with apt-get (a fresh
CI machine); otherwise the test skips on a laptop and fails under CI=true (``need``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

from tests.support.engines import need

_apt = threading.Lock()  # one apt-get at a time within this test process
POLICY_RC = Path("/usr/sbin/policy-rc.d")


def apt_install(package: str) -> str | None:
    """``apt-get install package`` without starting its service; None when done, else why
    not."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "not root with apt-get, so it cannot be installed here"
    with _apt:
        own_policy = not POLICY_RC.exists()
        if own_policy:  # keep e.g. prometheus's init script from starting a server
            POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
            POLICY_RC.chmod(0o755)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-qq"]
        try:
            done = subprocess.run([*apt, "install", "-y", "--no-install-recommends", package],
                                  env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:  # stale package lists on a fresh machine
                subprocess.run([*apt, "update"], env=env, capture_output=True, timeout=600)
                done = subprocess.run([*apt, "install", "-y", "--no-install-recommends",
                                       package], env=env, capture_output=True, text=True,
                                      timeout=900)
        finally:
            if own_policy:
                POLICY_RC.unlink(missing_ok=True)
    if done.returncode != 0:
        return f"apt-get install {package} failed: {done.stderr.strip()[-300:]}"
    return None


def tool(binary: str, package: str) -> str:
    """The path of ``binary``, installing Debian's ``package`` first if it is missing."""
    found = shutil.which(binary)
    problem = None
    if not found:
        problem = apt_install(package)
        found = shutil.which(binary)
    need(found is not None, f"{binary} is missing ({problem or f'{package} has no {binary}'})",
         f"install the Debian package {package}")
    assert found is not None
    return found


def compose_command() -> list[str]:
    """``docker compose`` (the v2 plugin) if the docker CLI has it, else ``docker-compose``
    (Debian 12's package)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 timeout=30).returncode == 0:
        return [docker, "compose"]
    return [tool("docker-compose", "docker-compose")]
