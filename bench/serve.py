"""The real ``gpubot serve`` process against the Slack stand-in (like tests/e2e), for
benchmarks: its own users, lease ids and ports so it never meets another run's."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from tests.slack_standin import SlackStandIn, StandInConfig, User

BURST = 16  # the bot's handler pool has 16 workers: one claim per worker at once
BENCH_USERS = tuple(User(f"UBENCH{i:04d}", f"bench{i}", f"Bench User {i}")
                    for i in range(1, BURST + 1))
BENCH_USER_IDS = tuple(u.id for u in BENCH_USERS)
SEED_USER = "UBENCHSEED"
ROOT = Path(__file__).resolve().parent.parent


def standin() -> SlackStandIn:
    return SlackStandIn(StandInConfig(users=BENCH_USERS)).start()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_TAKEN_BLOCKS: list[range] = []


def free_block(size: int) -> range:
    """``size`` consecutive ports nobody listens on now, below the kernel's ephemeral
    range (outgoing connections never take them) and outside tests/e2e's 20000-29999
    and the other blocks this process took."""
    top = min(_ephemeral_low(), 40000)
    starts = list(range(30000, top - size, size)) or list(range(10000, 20000 - size, size))
    random.shuffle(starts)
    for low in starts:
        block = range(low, low + size)
        if any(set(block) & set(b) for b in _TAKEN_BLOCKS):
            continue
        if all(port_free(p) for p in block):
            _TAKEN_BLOCKS.append(block)
            return block
    raise RuntimeError("no free port block for the bench")


def seed_lease_ids(url: str) -> int:
    """Migrate and leave one ended lease with a random high id, so the bot's leases (and
    containers ``gpubot-<id>``) never share a name with another run's on this engine."""
    from bot.db import migrate
    from bot.db.engine import Database
    from bot.db.tables import leases, users
    from bot.domain.lease import LeaseStatus

    migrate.upgrade(url)
    base = 2_000_100_000 + random.randrange(1000) * 100  # above tests/infra's id blocks
    now = datetime.now(UTC)
    db = Database(url)
    try:
        with db.transaction() as s:
            s.execute(insert(users), [{"id": SEED_USER, "created_at": now}])
            s.execute(insert(leases), [{
                "id": base, "user_id": SEED_USER, "status": LeaseStatus.RELEASED,
                "duration_s": timedelta(hours=1), "gpu_count": 1, "gpu_uuids": (), "created_at": now,
                "ended_at": now, "reminders_sent": ""}])
    finally:
        db.dispose()
    return base


@dataclass
class ServedBot:
    process: subprocess.Popen[bytes]
    slack: SlackStandIn
    workdir: Path
    log: Path
    ports: tuple[int, int]
    first_lease: int
    started_s: float  # from Popen to the Socket Mode connection

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def status(self, field: str) -> int:
        """A /proc/<pid>/status field in kB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)


def launch(slack: SlackStandIn, workdir: Path, *, fake_gpus: int = BURST,
           docker_host: str | None = None, scoped: bool = True,
           extra: dict[str, str] | None = None, module: list[str] | None = None) -> ServedBot:
    """``gpubot serve`` on ``docker_host`` (default engine when None). ``scoped``: run it
    through bench._scoped_serve (reconciler limited to the bench's containers), needed
    on an engine shared with other runs; else the plain ``python -m bot serve``."""
    from tests.infra import docker_engine as eng

    workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{workdir}/gpubot.db"
    first = seed_lease_ids(url) + 1
    low = free_block(20).start
    env = {**os.environ,
           "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_APP_TOKEN": slack.app_token,
           "SLACK_API_URL": slack.api_url, "DATABASE_URL": url,
           "GPUBOT_FAKE_GPUS": str(fake_gpus), "GPUBOT_IMAGE": eng.TEST_IMAGE,
           "GPUBOT_PULL_MISSING_IMAGE": "false",
           "GPUBOT_WORKSPACE_ROOT": str(workdir / "workspaces"),
           "GPUBOT_PUBLIC_HOST": "127.0.0.1", "GPUBOT_BIND_ADDRESS": "127.0.0.1",
           "GPUBOT_PORT_RANGE": f"{low}-{low + 19}",
           # Limits that do not bind on this machine: the floor runs without limits.
           "GPUBOT_MEM_LIMIT": "4g", "GPUBOT_CPUS": str(os.cpu_count() or 1),
           "GPUBOT_SHM_SIZE": "64m", "GPUBOT_TICK_SECONDS": "30",
           "GPUBOT_HOST_NAME": f"bench-{low}", "GPUBOT_READY_TIMEOUT": "2m",
           "GPUBOT_BENCH_SCOPE_USERS": ",".join(BENCH_USER_IDS),
           "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    for key in ("SLACK_SIGNING_SECRET", "GPUBOT_SECRET_KEY", "GPUBOT_ADMINS",
                "GPUBOT_ADMIN_CHANNEL"):
        env.pop(key, None)
    env.update(extra or {})
    log = workdir / "gpubot.log"
    started = time.monotonic()
    with log.open("ab") as out:
        module = module or (["bench._scoped_serve"] if scoped else ["bot", "serve"])
        process = subprocess.Popen([sys.executable, "-m", *module], cwd=workdir,
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    bot = ServedBot(process, slack, workdir, log, (low, low + 19), first, 0.0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gpubot serve exited {process.returncode}:\n{bot.log_text()}")
        if slack.calls("apps.connections.open"):
            with contextlib.suppress(Exception):  # keep waiting until the deadline
                slack.wait_for_connection(timeout=1)
                bot.started_s = time.monotonic() - started
                return bot
        time.sleep(0.05)
    stop(bot)
    raise RuntimeError(f"gpubot serve did not come up:\n{bot.log_text()}")


def stop(bot: ServedBot, docker_client=None) -> None:  # type: ignore[no-untyped-def]
    if bot.process.poll() is None:
        bot.process.send_signal(signal.SIGTERM)
        try:
            bot.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            bot.process.kill()
            bot.process.wait()
    if docker_client is not None:
        remove_bench_containers(docker_client)


def remove_bench_containers(client) -> None:  # type: ignore[no-untyped-def]
    """Containers of the bench's users only (never another run's)."""
    for user in BENCH_USER_IDS:
        for container in client.api.containers(all=True,
                                               filters={"label": f"gpubot.user={user}"}):
            with contextlib.suppress(Exception):  # already gone
                client.api.remove_container(container["Id"], force=True)
