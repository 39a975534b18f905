"""PostgreSQL for the benchmarks: the configured server, or a private throw-away one
when the configured server cannot take the connections a figure needs."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import psycopg

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def configured_url() -> str:
    return os.environ.get("GPUBOT_BENCH_PG_URL") or os.environ.get("GPUBOT_TEST_PG_URL") \
        or DEFAULT_URL


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@dataclass
class Server:
    url: str  # SQLAlchemy URL of its maintenance database
    private: bool
    version: str
    max_connections: int


def describe(url: str) -> Server:
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        maxc = int(conn.execute("SHOW max_connections").fetchone()[0])
    return Server(url, False, version, maxc)


def headroom(url: str) -> int:
    """Connections the server can still accept for a non-superuser-reserved client."""
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        maxc = int(conn.execute("SHOW max_connections").fetchone()[0])
        reserved = int(conn.execute("SHOW superuser_reserved_connections").fetchone()[0])
        used = int(conn.execute("SELECT count(*) FROM pg_stat_activity "
                                "WHERE backend_type = 'client backend'").fetchone()[0])
    return maxc - reserved - used


@contextmanager
def database(server_url: str) -> Iterator[str]:
    """A fresh, empty database on the server (dropped afterwards); yields its URL."""
    name = f"gpubot_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _bin(tool: str) -> str:
    found = shutil.which(tool) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"),
                                                   reverse=True)), None)
    if not found:
        raise RuntimeError(f"PostgreSQL's {tool} is not installed")
    return found


@contextmanager
def server_for(connections: int) -> Iterator[Server]:
    """The configured server if it has ``connections`` + 10 free, else a private one
    (initdb in a temp folder, trust auth, default settings but ``max_connections``)."""
    url = configured_url()
    if headroom(url) >= connections + 10:
        yield describe(url)
        return
    folder = tempfile.mkdtemp(prefix="gpubot-bench-pg-")
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres", "postgres")
    data = os.path.join(folder, "data")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subprocess.run([*run_as, _bin("initdb"), "-D", data, "-U", "postgres", "--auth=trust",
                    "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    options = (f"-c port={port} -c listen_addresses=127.0.0.1 "
               f"-c unix_socket_directories={folder} -c max_connections={connections + 40}")
    subprocess.run([*run_as, _bin("pg_ctl"), "-D", data, "-o", options, "-l",
                    os.path.join(folder, "log"), "-w", "-t", "60", "start"], check=True,
                   capture_output=True)
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        server = describe(url)
        server.private = True
        yield server
    finally:
        subprocess.run([*run_as, _bin("pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"],
                       check=False, capture_output=True)
        time.sleep(0.2)
        shutil.rmtree(folder, ignore_errors=True)


def backends(stack: ExitStack) -> tuple[Server, dict[str, Callable[[str], str]]]:
    """The configured PostgreSQL server and a URL maker per backend (``make(name)``): a
    SQLite file in a temporary folder, or a fresh database on the server; both go when
    ``stack`` closes. The tick benches measure each backend the same way."""
    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="gpubot-bench-"))
    server = describe(configured_url())
    return server, {"sqlite": lambda name: f"sqlite:///{folder}/{name}.db",
                    "postgresql": lambda name: stack.enter_context(database(server.url))}
