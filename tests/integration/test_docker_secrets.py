"""Issue 11 item 12 (last part): the argon2 hash of a lease's Jupyter password is on no
process's argv and in no environment, where `ps` on the host (argv is world-readable)
and `docker inspect` show it; Jupyter reads it from a 0600 file copied into the
container before its start.

The attacker's side: code inside the lease container (``exec_run`` as the container's
user: uid 1000, no capabilities, the container's namespaces, like kernel code) reads
every process's /proc/<pid>/cmdline and environ; on the host, an unprivileged user's
`ps` reads the argv of every process in the container."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import docker
import pytest

from bot.adapters.docker import DockerRuntime
from tests.integration.conftest import Lease
from tests.support import jupyter

pytestmark = pytest.mark.docker

READ_EVERY_PROCESS = r"""
import os, sys
for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
    for what in ("cmdline", "environ"):
        try:
            data = open(f"/proc/{pid}/{what}", "rb").read()
        except OSError as exc:
            data = f"unreadable {exc.errno}".encode()
        sys.stdout.buffer.write(f"{pid} {what} ".encode() + data.replace(b"\0", b" ") + b"\n")
"""


@pytest.fixture
def running(make_runtime: Callable[..., DockerRuntime], new_lease: Callable[..., Lease],
            docker_client: docker.DockerClient) -> tuple[Lease, object]:
    lease = new_lease(user="USECRET1")
    runtime = make_runtime()
    handle = runtime.start(lease.spec)
    runtime.wait_ready(handle, port=lease.spec.port, timeout=timedelta(seconds=90))
    return lease, docker_client.containers.get(handle.container_id)


def test_no_process_in_the_lease_shows_the_hash_on_argv_or_in_its_environment(
    running: tuple[Lease, object],
) -> None:
    lease, container = running
    code, out = container.exec_run(  # type: ignore[attr-defined]
        ["/usr/local/bin/gpubot-python", "-c", READ_EVERY_PROCESS])
    assert code == 0, out
    text = out.decode(errors="replace")
    lines = text.splitlines()
    # Jupyter itself is among the processes read, and none was hidden (EACCES) from us.
    assert any("cmdline" in line and "jupyter" in line for line in lines), text
    assert " unreadable 13" not in text, text
    assert lease.spec.password_hash not in text
    assert "argon2" not in text
    assert lease.password not in text


def test_docker_inspect_and_the_hosts_ps_show_no_hash(
    running: tuple[Lease, object], docker_client: docker.DockerClient,
) -> None:
    lease, container = running
    inspected = json.dumps(docker_client.api.inspect_container(container.id))  # type: ignore[attr-defined]
    assert lease.spec.password_hash not in inspected
    assert "argon2" not in inspected
    pids = [row[1] for row in container.top()["Processes"]]  # type: ignore[attr-defined]
    assert len(pids) >= 2  # docker-init and Jupyter
    for pid in pids:  # what any host user's `ps -ef` prints
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert "argon2" not in argv, argv


def test_the_hash_is_a_0600_file_of_the_container_user_and_jupyter_uses_it(
    running: tuple[Lease, object],
) -> None:
    lease, container = running
    code, out = container.exec_run(  # type: ignore[attr-defined]
        ["sh", "-c", "stat -c '%a %u %g' /run/secrets /run/secrets/jupyter_password_hash;"
                     " cat /run/secrets/jupyter_password_hash"])
    assert code == 0, out
    folder, file, content = out.decode().splitlines()
    assert (folder, file) == ("700 1000 1000", "600 1000 1000")
    assert content == lease.spec.password_hash
    assert jupyter.logs_in(lease.url, lease.password)
