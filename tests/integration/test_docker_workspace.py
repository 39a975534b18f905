"""User files are sacred: they outlive the container, follow the user to the next one,
and nobody else's container sees them."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import docker
import pytest

from bot.adapters.docker import DockerRuntime
from bot.domain.errors import ContainerStartError
from tests.integration.conftest import Lease

pytestmark = pytest.mark.docker


def _exec(client: docker.DockerClient, lease: Lease, command: str) -> tuple[int, str]:
    code, out = client.containers.get(f"gpubot-{lease.spec.lease_id}").exec_run(
        ["sh", "-c", command]
    )
    return code, out.decode().strip()


def test_files_survive_stop_and_reach_the_users_next_container(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
    workspace_root: Path,
) -> None:
    runtime = make_runtime()
    first = new_lease(user="UALICE1")
    runtime.start(first.spec)
    assert _exec(docker_client, first, "echo results > /workspace/notes.txt") == (0, "")
    runtime.stop(first.spec.lease_id)

    saved = workspace_root / "UALICE1" / "notes.txt"
    assert saved.read_text() == "results\n"
    assert (os.stat(saved).st_uid, os.stat(saved).st_gid) == (1000, 1000)

    second = new_lease(user="UALICE1")
    runtime.start(second.spec)
    assert _exec(docker_client, second, "cat /workspace/notes.txt") == (0, "results")


def test_another_users_container_does_not_see_the_workspace(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
    workspace_root: Path,
) -> None:
    runtime = make_runtime()
    alice, bob = new_lease(user="UALICE2"), new_lease(user="UBOB2")
    runtime.start(alice.spec)
    runtime.start(bob.spec)
    assert _exec(docker_client, alice, "echo secret > /workspace/alice.txt")[0] == 0

    assert _exec(docker_client, bob, "ls -A /workspace") == (0, "")
    search = (
        "find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune"
        " -o -name alice.txt -print 2>/dev/null"
    )
    assert _exec(docker_client, bob, search + "; true") == (0, "")
    assert _exec(docker_client, alice, search + "; true") == (0, "/workspace/alice.txt")
    assert sorted(p.name for p in workspace_root.iterdir()) == ["UALICE2", "UBOB2"]


def test_a_workspace_folder_with_loose_permissions_is_tightened(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    workspace_root: Path,
) -> None:
    folder = workspace_root / "UCAROL3"
    folder.mkdir(parents=True)
    (folder / "keep.txt").write_text("mine")
    os.chmod(folder, 0o777)
    make_runtime().start(new_lease(user="UCAROL3").spec)
    assert os.stat(folder).st_mode & 0o777 == 0o700
    assert (os.stat(folder).st_uid, os.stat(folder).st_gid) == (1000, 1000)
    assert (folder / "keep.txt").read_text() == "mine"


def test_a_symlink_in_place_of_a_workspace_is_refused(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    workspace_root: Path,
    tmp_path: Path,
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    workspace_root.mkdir(parents=True)
    (workspace_root / "UMALLORY4").symlink_to(target)
    lease = new_lease(user="UMALLORY4")
    runtime = make_runtime()
    with pytest.raises(ContainerStartError) as caught:
        runtime.start(lease.spec)
    assert "not a plain folder" in caught.value.message
    assert runtime.poll(lease.spec.lease_id).status.value == "gone"
    assert os.stat(target).st_uid == 0  # not chowned through the link


def test_stop_never_touches_the_workspace(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    workspace_root: Path,
) -> None:
    runtime = make_runtime()
    lease = new_lease(user="UDAVE5")
    handle = runtime.start(lease.spec)
    runtime.wait_ready(handle, port=lease.spec.port, timeout=timedelta(seconds=90))
    before = sorted(p.name for p in (workspace_root / "UDAVE5").iterdir())
    runtime.stop(lease.spec.lease_id)
    runtime.stop(lease.spec.lease_id)
    assert (workspace_root / "UDAVE5").is_dir()
    assert sorted(p.name for p in (workspace_root / "UDAVE5").iterdir()) == before
