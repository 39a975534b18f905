"""Issue 11 item 16: a lease cannot fill the host's disk through its container's log or
its writable layer, and the bot can tell how much each workspace holds.

The attacker is code in the lease container (``exec_run`` as its user, uid 1000): it
writes to Jupyter's own stdout (``/proc/1/fd/1``, where a kernel's ``os.write(1, ...)``
lands: the container's log) and fills the container's file system. The writable-layer
bound needs a storage driver that can keep it: the spare engine's btrfs
(tests/infra/spare_engine.sh); the main engine's overlay2 on ext4 cannot, and a start
asking for it there is refused with a sentence that says so."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import docker
import pytest

from bot.adapters.docker import DockerRuntime
from bot.domain.errors import ContainerStartError
from tests.infra import docker_engine as eng
from tests.integration.conftest import Lease

pytestmark = pytest.mark.docker
MIB = 1024**2
READY = timedelta(seconds=90)
FLOOD = ("/usr/local/bin/gpubot-python", "-c",
         "import os\nfd = os.open('/proc/1/fd/1', os.O_WRONLY)\n"
         "line = b'x' * 1023 + b'\\n'\nfor _ in range(12 * 1024): os.write(fd, line)")


def log_files(container: object) -> list[Path]:
    path = Path(container.attrs["LogPath"])  # type: ignore[attr-defined]
    return sorted(path.parent.glob(path.name + "*"))


def test_a_flood_on_stdout_is_rotated_away(
    make_runtime: Callable[..., DockerRuntime], new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
) -> None:
    lease = new_lease(user="UDISK1")
    handle = make_runtime(log_max_size="1m", log_max_files=2).start(lease.spec)
    container = docker_client.containers.get(handle.container_id)
    code, out = container.exec_run(list(FLOOD))
    assert code == 0, out
    files = log_files(container)
    total = sum(f.stat().st_size for f in files)
    assert 1 <= len(files) <= 2, files
    assert total <= 2 * MIB + 64 * 1024, f"{total} bytes of log kept after a 12 MiB flood"
    assert container.attrs["HostConfig"]["LogConfig"] == {
        "Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}


@pytest.fixture(scope="module")
def spare(lease_ids: eng.LeaseIds) -> Iterator[docker.DockerClient]:
    with eng.spare_session(lease_ids) as client:
        yield client


def test_the_writable_layer_bound_reaches_a_driver_that_takes_it(
    spare: docker.DockerClient, workspace_root: Path, new_lease: Callable[..., Lease],
) -> None:
    """The bound is the engine's to keep: here dockerd accepts and records it. (On this
    test kernel, btrfs qgroups did not stop a 1 GiB write under a 1 GiB bound, and XFS
    has no quota support, so enforcement itself is not shown here.)"""
    # btrfs counts the image's files in the bound too (the test image: ~650 MB).
    runtime = DockerRuntime(eng.runtime_config(
        workspace_root, gpu_request=False, rootfs_size="1g"), spare)
    lease = new_lease(user="UDISK2", gpus=())
    handle = runtime.start(lease.spec)
    container = spare.containers.get(handle.container_id)
    assert container.attrs["HostConfig"]["StorageOpt"] == {"size": "1g"}
    assert container.status == "running"
    runtime.stop(lease.spec.lease_id)


def test_a_bound_the_driver_cannot_keep_is_refused_clearly(
    make_runtime: Callable[..., DockerRuntime], new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
) -> None:
    driver = docker_client.info()
    backing = dict(p for p in driver.get("DriverStatus") or [] if len(p) == 2)
    if driver["Driver"] != "overlay2" or backing.get("Backing Filesystem") == "xfs":
        pytest.skip("this engine can bound writable layers: nothing to refuse")
    lease = new_lease(user="UDISK3")
    with pytest.raises(ContainerStartError) as caught:
        make_runtime(rootfs_size="1g").start(lease.spec)
    assert "GPUBOT_ROOTFS_SIZE" in caught.value.message
    assert "storage-opt" in (caught.value.detail or "")
    name = f"gpubot-{lease.spec.lease_id}"
    assert docker_client.containers.list(all=True, filters={"name": name}) == []
    assert docker_client.networks.list(names=[name]) == []


def test_workspace_usage_counts_what_the_lease_wrote(
    make_runtime: Callable[..., DockerRuntime], new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
) -> None:
    runtime = make_runtime()
    assert runtime.workspace_usage("UNOBODY9") is None
    lease = new_lease(user="UDISK4")
    handle = runtime.start(lease.spec)
    empty = runtime.workspace_usage("UDISK4")
    assert empty is not None and empty < MIB
    container = docker_client.containers.get(handle.container_id)
    code, out = container.exec_run(["sh", "-c",
        "mkdir -p /workspace/data && head -c 5242880 /dev/urandom > /workspace/data/a.bin"
        " && ln /workspace/data/a.bin /workspace/data/hardlink.bin"
        " && ln -s /usr /workspace/data/usr-link"])
    assert code == 0, out
    used = runtime.workspace_usage("UDISK4")
    assert used is not None and 5 * MIB <= used < 5 * MIB + 256 * 1024, used
    assert os.path.islink(runtime._config.workspace_root / "UDISK4" / "data" / "usr-link")
