"""What the Docker tests share: reaching the engines (skip on a laptop, fail under
CI=true), the per-session lease-id range, and cleanup of the session's containers.

The fixtures built on it live in tests/integration/conftest.py; the container-runtime
contract test (tests/contract) imports it directly, as conftest fixtures of
tests/integration are not visible there. Engines and images come from
tests/infra/setup_docker.sh and tests/infra/build_images.sh.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from bot.adapters.docker import DockerRuntimeConfig
from tests.support.engines import need

SETUP_HINT = "as root: tests/infra/setup_docker.sh && tests/infra/build_images.sh"
TEST_HOST = "gpubot-tests"  # the gpubot.host label of the test suite's own containers
TEST_IMAGE = os.environ.get("GPUBOT_TEST_IMAGE", "gpubot-jupyter:test")
TEST_CONDA_IMAGE = os.environ.get("GPUBOT_TEST_CONDA_IMAGE", "gpubot-jupyter:test-conda")
# image/conda.Dockerfile (the second environment: conda in the terminal), built on TEST_IMAGE
TEST_ENV_CONDA_IMAGE = os.environ.get("GPUBOT_TEST_ENV_CONDA_IMAGE", "gpubot-jupyter:test-env-conda")
NOHOOK_HOST = os.environ.get("GPUBOT_NOHOOK_DOCKER_HOST", "unix:///run/gpubot-nohook/docker.sock")
# tests/infra/spare_engine.sh: live-restore, btrfs (bounded writable layers); tests restart it.
SPARE_HOST = os.environ.get("GPUBOT_SPARE_DOCKER_HOST", "unix:///run/gpubot-spare/docker.sock")
SPARE_SCRIPT = Path(__file__).with_name("spare_engine.sh")
FAKE_HOOK_LOG = Path(os.environ.get("GPUBOT_FAKE_HOOK_LOG", "/tmp/gpubot-fake-nvidia-hook.log"))
REGISTRY = os.environ.get("GPUBOT_TEST_REGISTRY", "127.0.0.1:5000")
# A real GPU host sets this to one of its GPUs; the fake hook accepts any UUID.
TEST_GPU_UUID = os.environ.get("GPUBOT_TEST_GPU_UUID", "GPU-5e55f00d-0000-4000-8000-00000000c0de")


def require(condition: bool, reason: str) -> None:
    """``need`` with the Docker setup hint added to the skip reason."""
    need(condition, reason, hint=SETUP_HINT)


def engine(base_url: str | None = None) -> docker.DockerClient:
    """A client of the engine at ``base_url`` (default: DOCKER_HOST or the local socket)."""
    where = base_url or os.environ.get("DOCKER_HOST", "the default Docker socket")
    try:
        client = docker.DockerClient(base_url=base_url) if base_url else docker.from_env()
        client.ping()
    except DockerException as exc:
        require(False, f"no Docker engine reachable at {where}: {exc}".splitlines()[0])
        raise  # unreachable: require() skipped or failed
    return client


def require_image(client: docker.DockerClient, image: str) -> None:
    try:
        client.images.get(image)
    except ImageNotFound:
        require(False, f"image {image} is not on the engine")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class LeaseIds:
    """This session's own lease ids: a random block of 100 000 far above real ones."""

    first: int = field(default_factory=lambda: 1_000_000_000 + random.randrange(10_000) * 100_000)
    _next: int = 0

    def __post_init__(self) -> None:
        self._next = self.first

    def new(self) -> int:
        self._next += 1
        return self._next

    def block(self, size: int) -> int:
        """The first of ``size`` fresh ids (for a test's own database of leases)."""
        first = self._next + 1
        self._next += size
        return first

    def __contains__(self, lease_id: object) -> bool:
        return isinstance(lease_id, int) and self.first < lease_id <= self.first + 100_000


def remove_session_containers(client: docker.DockerClient, ids: LeaseIds) -> None:
    for container in client.containers.list(
        all=True, filters={"label": "gpubot.lease"}, ignore_removed=True
    ):
        try:
            lease = int(container.labels.get("gpubot.lease", ""))
        except ValueError:
            continue
        if lease in ids:
            try:
                container.remove(force=True)
            except NotFound:
                pass
    # Each lease has its own network (bot/adapters/docker_network.py), also one whose
    # container a test removed by hand.
    for network in client.networks.list(filters={"label": "gpubot.lease"}):
        try:
            lease = int((network.attrs.get("Labels") or {}).get("gpubot.lease", ""))
        except ValueError:
            continue
        if lease in ids:
            _remove_network(network)


def remove_containers(client: docker.DockerClient, lease_ids: list[int]) -> None:
    for lease_id in lease_ids:
        try:
            client.containers.get(f"gpubot-{lease_id}").remove(force=True)
        except NotFound:
            pass
        for network in client.networks.list(names=[f"gpubot-{lease_id}"]):
            _remove_network(network)


def _remove_network(network: Any) -> None:
    try:
        network.remove()
    except (NotFound, APIError):  # still attached somewhere: the session's end retries
        pass


def runtime_config(workspace_root: Path, **changes: Any) -> DockerRuntimeConfig:
    base = DockerRuntimeConfig(
        image=TEST_IMAGE,
        workspace_root=workspace_root,
        bind_address="127.0.0.1",
        mem_limit="768m",
        cpus=1.5,
        shm_size="96m",
        pids_limit=512,
        gpu_request=True,
        pull_missing=False,
        ready_poll_interval=0.1,
        stop_timeout=5,
        host=TEST_HOST,
    )
    return replace(base, **changes)


@contextmanager
def session_engine(ids: LeaseIds) -> Iterator[docker.DockerClient]:
    """The main engine with the test image, cleaning up this session's containers."""
    client = engine()
    require_image(client, TEST_IMAGE)
    yield client
    remove_session_containers(client, ids)
    client.close()


def spare_engine(*args: str) -> None:
    """Run tests/infra/spare_engine.sh (start, restart [--no-live-restore], load ...)."""
    require(os.geteuid() == 0, "the spare engine's tests restart a dockerd: they need root")
    done = subprocess.run(["bash", str(SPARE_SCRIPT), *args], capture_output=True, text=True,
                          timeout=300, check=False)
    require(done.returncode == 0, f"spare_engine.sh {' '.join(args)} failed: "
            f"{(done.stderr or done.stdout).strip()[-400:]}")


@contextmanager
def spare_session(ids: LeaseIds) -> Iterator[docker.DockerClient]:
    """The spare engine, running with live-restore and holding the test image; this
    session's containers and networks there are removed at the end."""
    spare_engine("start")
    spare_engine("load", TEST_IMAGE)
    client = engine(SPARE_HOST)
    try:
        yield client
    finally:
        remove_session_containers(client, ids)
        client.close()
