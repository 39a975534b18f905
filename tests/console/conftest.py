"""`gpubot console` as a real process in a real terminal (tmux), against the tests' real
Docker engine and image, SQLite and GPUBOT_FAKE_GPUS."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.db import migrate, tables
from bot.domain.lease import LeaseStatus
from tests.infra import docker_engine as eng
from tests.integration.conftest import docker_client, lease_ids  # noqa: F401 (fixtures)
from tests.support.tmux import Terminal

ALICE, BOB = "U0ALICE001", "U0BOB00002"
PROMPT = r"(?m)^U0\w+( \(admin\))?>"  # the console's prompt: the current user


@dataclass
class RunningConsole:
    term: Terminal
    workdir: Path
    db_url: str
    host: str
    first_lease: int  # the first lease id this console gives out

    @property
    def log_text(self) -> str:
        path = self.workdir / "gpubot-console.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def leases(self) -> dict[int, str]:
        """Lease id → status, read from the console's own database."""
        engine = sa.create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.select(tables.leases.c.id, tables.leases.c.status))
                return {row.id: LeaseStatus(row.status).value for row in rows}
        finally:
            engine.dispose()


def seed_lease_ids(db_url: str, after: int) -> None:
    """Make the next lease id ``after + 1``: lease ids name containers (``gpubot-<id>``)
    on an engine other test runs share, so each console takes ids from the session's own
    block (``lease_ids``), which the session also cleans up."""
    migrate.upgrade(db_url)
    now = datetime.now(UTC)
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(tables.users.insert().values(id="U0SEED", created_at=now))
        conn.execute(tables.leases.insert().values(
            id=after, user_id="U0SEED", status=LeaseStatus.RELEASED,
            duration_s=timedelta(hours=1), created_at=now, ended_at=now))
    engine.dispose()


def console_env(workdir: Path, host: str, **extra: str) -> dict[str, str]:
    low = random.randrange(30000, 40000, 10)
    keep = {k: v for k, v in os.environ.items()
            if k in {"PATH", "DOCKER_HOST", "VIRTUAL_ENV"} or k.startswith("GPUBOT_TEST")}
    return {**keep, "HOME": str(workdir), "LANG": "C.UTF-8", "TERM": "xterm-256color",
            "PYTHONUNBUFFERED": "1", "DATABASE_URL": f"sqlite:///{workdir}/gpubot.db",
            "GPUBOT_FAKE_GPUS": "2", "GPUBOT_IMAGE": eng.TEST_IMAGE,
            "GPUBOT_PULL_MISSING_IMAGE": "false", "GPUBOT_WORKSPACE_ROOT": str(workdir / "ws"),
            "GPUBOT_PUBLIC_HOST": "127.0.0.1", "GPUBOT_BIND_ADDRESS": "127.0.0.1",
            "GPUBOT_PORT_RANGE": f"{low}-{low + 9}", "GPUBOT_MEM_LIMIT": "1g",
            "GPUBOT_CPUS": "1", "GPUBOT_SHM_SIZE": "64m", "GPUBOT_TICK_SECONDS": "1",
            "GPUBOT_HOST_NAME": host, "GPUBOT_READY_TIMEOUT": "2m", **extra}


@pytest.fixture
def run_console(tmp_path: Path, docker_client, lease_ids
                ) -> Iterator[Callable[..., RunningConsole]]:
    """``run_console("--user", ALICE, ...)`` → the console, up and at its prompt."""
    started: list[RunningConsole] = []

    def run(*args: str, **extra: str) -> RunningConsole:
        host = f"console-{random.randrange(10**6)}"
        db_url = f"sqlite:///{tmp_path}/gpubot.db"
        first = lease_ids.new()
        for _ in range(20):  # this console's ids: first + 1 …
            lease_ids.new()
        seed_lease_ids(db_url, first)
        term = Terminal(tmp_path)
        term.start([sys.executable, "-m", "bot", "console", *args],
                   env=console_env(tmp_path, host, **extra), cwd=tmp_path)
        running = RunningConsole(term, tmp_path, db_url, host, first + 1)
        started.append(running)
        term.wait_for(PROMPT, timeout=60)
        return running

    yield run
    for running in started:
        running.term.close()
        for container in docker_client.containers.list(
                all=True, filters={"label": f"gpubot.host={running.host}"}, ignore_removed=True):
            container.remove(force=True)
