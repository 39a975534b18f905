"""Failures a start can meet on a real engine: each gives a clear message, carries
Docker's explanation, and leaves no container behind."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import ImageNotFound

from bot.adapters.docker import DockerRuntime
from bot.domain.errors import ContainerStartError, ImageMissing
from bot.ports import ContainerStatus
from tests.infra import docker_engine as eng
from tests.integration.conftest import Lease

pytestmark = pytest.mark.docker
BUSYBOX = Path("/bin/busybox")


def _nothing_left(client: docker.DockerClient, lease: Lease) -> bool:
    found: list[object] = client.containers.list(
        all=True, filters={"name": f"^/gpubot-{lease.spec.lease_id}$"}, ignore_removed=True
    )
    return not found


@pytest.mark.parametrize("image", ["gpubot-no-such-image:test", "Not A Valid Image!"])
def test_a_bad_image_name_is_a_clear_error_and_leaves_nothing(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
    image: str,
) -> None:
    lease = new_lease()
    with pytest.raises(ImageMissing) as caught:
        make_runtime(image=image).start(lease.spec)
    assert image in caught.value.message
    assert _nothing_left(docker_client, lease)


def test_an_image_the_registry_lacks_fails_the_pull_and_leaves_nothing(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
    registry: str,
) -> None:
    image = f"{registry}/gpubot-absent:{os.getpid()}"
    lease = new_lease()
    with pytest.raises(ImageMissing) as caught:
        make_runtime(image=image, pull_missing=True).start(lease.spec)
    assert caught.value.message == f"Could not pull the Jupyter image {image}."
    assert "not found" in (caught.value.detail or "")
    assert _nothing_left(docker_client, lease)


@pytest.fixture
def pushed_image(docker_client: docker.DockerClient, registry: str) -> Iterator[str]:
    """A small image (static busybox + 8 MiB of noise) in the registry, absent locally."""
    eng.require(BUSYBOX.is_file(), f"{BUSYBOX} (busybox-static) missing")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(BUSYBOX, arcname="busybox")
        noise = os.urandom(8 * 1024 * 1024)
        info = tarfile.TarInfo("noise.bin")
        info.size = len(noise)
        tar.addfile(info, io.BytesIO(noise))
    repository, tag = f"{registry}/gpubot-pull-test", f"s{os.getpid()}"
    image = f"{repository}:{tag}"
    docker_client.api.import_image_from_data(
        buffer.getvalue(),
        repository=repository,
        tag=tag,
        changes=['CMD ["/busybox", "sleep", "600"]'],
    )
    for event in docker_client.images.push(repository, tag=tag, stream=True, decode=True):
        assert "error" not in event, event
    docker_client.images.remove(image)
    yield image
    try:
        docker_client.images.remove(image, force=True)
    except ImageNotFound:
        pass


def test_a_missing_image_is_pulled_with_progress_when_allowed(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
    pushed_image: str,
) -> None:
    lease = new_lease(gpus=())
    # the pushed image is a few layers without a shell: what this test is about is the
    # pull, and the isolation probe (which needs sh and python) has tests of its own
    runtime = make_runtime(image=pushed_image, pull_missing=True, gpu_request=False,
                           block_host_access=False)
    progress: list[str] = []
    runtime.start(lease.spec, on_progress=progress.append)
    percents = [line for line in progress if line.startswith(f"Pulling image {pushed_image}: ")]
    numbers = [int(line.rsplit(" ", 1)[1].rstrip("%")) for line in percents]
    assert len(numbers) >= 3, progress
    assert numbers == sorted(numbers)
    assert numbers[0] < 50 and numbers[-1] == 100
    docker_client.images.get(pushed_image)
    assert runtime.poll(lease.spec.lease_id).status is ContainerStatus.RUNNING
    runtime.stop(lease.spec.lease_id)  # before the fixture removes the image


def test_a_host_without_the_nvidia_toolkit_explains_itself_and_leaves_nothing(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    nohook_client: docker.DockerClient,
) -> None:
    image = "gpubot-nohook-test:latest"
    # The engine refuses before running anything, so an image holding nothing but a
    # command is enough on that engine.
    nohook_client.api.import_image_from_data(
        _empty_tar(),
        repository="gpubot-nohook-test",
        tag="latest",
        changes=['CMD ["/start-jupyter"]'],
    )
    lease = new_lease()
    runtime = make_runtime(client=nohook_client, image=image)
    with pytest.raises(ContainerStartError) as caught:
        runtime.start(lease.spec)
    assert "NVIDIA Container Toolkit" in caught.value.message
    assert "could not select device driver" in (caught.value.detail or "")
    assert _nothing_left(nohook_client, lease)


def test_a_foreign_container_with_our_name_is_left_alone(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
) -> None:
    lease = new_lease()
    name = f"gpubot-{lease.spec.lease_id}"
    foreign = docker_client.containers.create(
        eng.TEST_IMAGE, name=name, labels={"owner": "someone"}
    )
    runtime = make_runtime()
    with pytest.raises(ContainerStartError) as caught:
        runtime.start(lease.spec)
    assert "did not create" in caught.value.message
    assert runtime.poll(lease.spec.lease_id).status is ContainerStatus.GONE
    runtime.stop(lease.spec.lease_id)
    assert docker_client.containers.get(name).id == foreign.id


def test_an_unreachable_engine_is_a_start_error(
    new_lease: Callable[..., Lease], workspace_root: Path, tmp_path: Path
) -> None:
    nowhere = docker.DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock", version="1.41")
    runtime = DockerRuntime(eng.runtime_config(workspace_root), nowhere)
    with pytest.raises(ContainerStartError) as caught:
        runtime.start(new_lease().spec)
    assert "not reachable" in caught.value.message


def _empty_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("workspace")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    return buffer.getvalue()


def test_another_hosts_container_with_our_name_is_never_adopted(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
) -> None:
    """Two bots on one engine (DESIGN §4): the other host's gpubot-<id> is not ours to
    start, stop or report on, even with the same lease id."""
    lease = new_lease()
    name = f"gpubot-{lease.spec.lease_id}"
    theirs = docker_client.containers.run(
        eng.TEST_IMAGE, ["sleep", "300"], name=name, detach=True, entrypoint=[],
        labels={"gpubot.lease": str(lease.spec.lease_id), "gpubot.host": "another-gpu-host"})
    runtime = make_runtime()
    with pytest.raises(ContainerStartError) as caught:
        runtime.start(lease.spec)
    assert "another-gpu-host" in caught.value.message
    assert runtime.poll(lease.spec.lease_id).status is ContainerStatus.GONE
    runtime.stop(lease.spec.lease_id)
    theirs.reload()
    assert theirs.status == "running" and docker_client.containers.get(name).id == theirs.id
