"""The machine a run happened on."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _git() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bot", "handlers"],
                               cwd=root, text=True, capture_output=True,
                               check=False).stdout.strip()
        return head + (" (+ uncommitted changes in bot/ or handlers/)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def describe() -> dict[str, str]:
    info = {
        "date (UTC)": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "CPU": f"{os.cpu_count()} cores ({_cpu_model()})",
        "memory": _mem_gib(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "SQLite": sqlite3.sqlite_version,
        "commit": _git(),
    }
    try:
        import docker

        client = docker.from_env()
        v = client.version()
        info["Docker"] = f"Engine {v.get('Version')} (API {v.get('ApiVersion')}, storage " \
                         f"{client.info().get('Driver')})"
        client.close()
    except Exception as exc:  # noqa: BLE001 - shown instead
        info["Docker"] = f"unreachable: {str(exc).splitlines()[0]}"
    try:
        info["Slurm"] = subprocess.run(["slurmctld", "-V"], capture_output=True, text=True,
                                       check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["Slurm"] = "not installed"
    try:
        from bench import pg

        info["PostgreSQL"] = pg.describe(pg.configured_url()).version
    except Exception as exc:  # noqa: BLE001
        info["PostgreSQL"] = f"unreachable: {str(exc).splitlines()[0]}"
    return info
