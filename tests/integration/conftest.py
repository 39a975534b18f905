"""Fixtures for the tests that need a real Docker engine (``@pytest.mark.docker``).

Without a reachable engine (or without the test image, the second engine, the fake
NVIDIA hook or the local registry a test asks for) the test is skipped with the reason
and the command that sets it up; under CI=true it fails instead, so CI cannot pass by
skipping. Set-up: tests/infra/setup_docker.sh and tests/infra/build_images.sh (root).
Every container a session starts has a lease id from the session's own random block
(``gpubot-<id>``); they are all removed when the session ends.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from bot.adapters.docker import DockerRuntime
from bot.ports import ContainerSpec
from bot.security import generate_password, hash_jupyter_password
from tests.infra import docker_engine as eng


@dataclass(frozen=True)
class Lease:
    """A ContainerSpec and the plaintext password its hash was made from."""

    spec: ContainerSpec
    password: str = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.spec.port}"


@pytest.fixture(scope="session")
def lease_ids() -> eng.LeaseIds:
    return eng.LeaseIds()


@pytest.fixture(scope="session")
def docker_client(lease_ids: eng.LeaseIds) -> Iterator[docker.DockerClient]:
    """The engine with the fake NVIDIA hook and the test image; skip/fail without."""
    with eng.session_engine(lease_ids) as client:
        yield client


@pytest.fixture(scope="session")
def nohook_client(lease_ids: eng.LeaseIds) -> Iterator[docker.DockerClient]:
    """The second engine: no NVIDIA Container Toolkit on that 'host'."""
    client = eng.engine(eng.NOHOOK_HOST)
    yield client
    eng.remove_session_containers(client, lease_ids)
    client.close()


@pytest.fixture(scope="session")
def fake_hook_log() -> Path:
    eng.require(eng.FAKE_HOOK_LOG.is_file(), f"fake NVIDIA hook log {eng.FAKE_HOOK_LOG} missing")
    return eng.FAKE_HOOK_LOG


@pytest.fixture(scope="session")
def registry() -> str:
    try:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            f"http://{eng.REGISTRY}/v2/", timeout=3
        )
        problem = ""
    except OSError as exc:
        problem = f"no image registry at {eng.REGISTRY}: {exc}"
    eng.require(not problem, problem)
    return eng.REGISTRY


@pytest.fixture
def workspace_root(tmp_path: Path) -> Path:
    return tmp_path / "workspaces"


@pytest.fixture
def make_runtime(
    docker_client: docker.DockerClient, workspace_root: Path
) -> Callable[..., DockerRuntime]:
    """``make_runtime(**config changes, client=...)`` → a DockerRuntime for this test."""

    def make(*, client: docker.DockerClient | None = None, **changes: Any) -> DockerRuntime:
        return DockerRuntime(eng.runtime_config(workspace_root, **changes), client or docker_client)

    return make


@pytest.fixture
def new_lease(
    lease_ids: eng.LeaseIds, docker_client: docker.DockerClient
) -> Iterator[Callable[..., Lease]]:
    """``new_lease(user=..., gpus=..., password_hash=...)`` → a fresh lease id and port.
    The test's containers are removed when it ends (the workspace stays in tmp_path)."""
    issued: list[int] = []

    def make(
        *,
        user: str = "UTESTER1",
        gpus: tuple[str, ...] = (eng.TEST_GPU_UUID,),
        password_hash: str | None = None,
    ) -> Lease:
        password = generate_password()
        spec = ContainerSpec(
            lease_id=lease_ids.new(),
            user_id=user,
            gpu_uuids=gpus,
            port=eng.free_port(),
            password_hash=password_hash
            if password_hash is not None
            else hash_jupyter_password(password),
        )
        issued.append(spec.lease_id)
        return Lease(spec=spec, password=password)

    yield make
    eng.remove_containers(docker_client, issued)
