"""What `docker inspect` and the kernel say about a started lease container: limits,
user, privileges, GPU device request, labels, published port, workspace folder."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from bot.adapters.docker import DockerRuntime
from tests.infra import docker_engine as eng
from tests.integration.conftest import Lease

pytestmark = pytest.mark.docker


@pytest.fixture
def started(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
) -> tuple[Lease, Any]:
    lease = new_lease(user="UHARDEN1")
    make_runtime().start(lease.spec)
    return lease, docker_client.containers.get(f"gpubot-{lease.spec.lease_id}")


def test_limits_user_and_privileges(started: tuple[Lease, Any]) -> None:
    _, container = started
    host = container.attrs["HostConfig"]
    assert host["Memory"] == 768 * 1024**2
    assert host["MemorySwap"] == 768 * 1024**2
    assert host["NanoCpus"] == 1_500_000_000
    assert host["ShmSize"] == 96 * 1024**2
    assert host["PidsLimit"] == 512
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["CapDrop"] == ["ALL"]
    assert not host.get("CapAdd")
    assert host["Privileged"] is False
    # A dead container fails its lease: the engine must not bring it back (issue 11.17).
    assert host["RestartPolicy"]["Name"] == "no"
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}
    assert host["Init"] is True
    assert container.attrs["Config"]["User"] == "1000:1000"


def test_the_kernel_enforces_user_no_new_privs_and_no_capabilities(
    started: tuple[Lease, Any],
) -> None:
    _, container = started
    code, out = container.exec_run(
        ["sh", "-c", "id -u; id -g; grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status"]
    )
    assert code == 0, out
    lines = out.decode().split("\n")
    assert lines[:2] == ["1000", "1000"]
    status = dict(line.split(":\t") for line in lines[2:] if line)
    assert status == {"CapPrm": "0000000000000000", "CapEff": "0000000000000000", "NoNewPrivs": "1"}


def test_the_kernel_enforces_the_memory_and_pids_limits(started: tuple[Lease, Any]) -> None:
    _, container = started
    read = "cat /sys/fs/cgroup/{v2} 2>/dev/null || cat /sys/fs/cgroup/{v1}"
    for v2, v1, expected in [
        ("pids.max", "pids/pids.max", "512"),
        ("memory.max", "memory/memory.limit_in_bytes", str(768 * 1024**2)),
    ]:
        code, out = container.exec_run(["sh", "-c", read.format(v2=v2, v1=v1)])
        assert (code, out.decode().strip()) == (0, expected)
    code, out = container.exec_run(["sh", "-c", "df -B1 --output=size /dev/shm | tail -n 1"])
    assert (code, int(out.decode())) == (0, 96 * 1024**2)


def test_labels_name_and_no_password_in_the_environment(started: tuple[Lease, Any]) -> None:
    lease, container = started
    assert container.name == f"gpubot-{lease.spec.lease_id}"
    labels = container.labels
    assert labels["gpubot.lease"] == str(lease.spec.lease_id)
    assert labels["gpubot.user"] == "UHARDEN1"
    assert labels["gpubot.gpus"] == eng.TEST_GPU_UUID
    assert labels["gpubot.managed"] == "1"
    env = container.attrs["Config"]["Env"]
    assert "JUPYTER_PASSWORD_HASH_FILE=/run/secrets/jupyter_password_hash" in env
    assert not any(lease.password in item or "argon2" in item for item in env)


def test_the_gpu_is_requested_by_uuid_and_reaches_the_nvidia_hook(
    started: tuple[Lease, Any], fake_hook_log: Path
) -> None:
    _, container = started
    [request] = container.attrs["HostConfig"]["DeviceRequests"]
    assert request["DeviceIDs"] == [eng.TEST_GPU_UUID]
    assert request["Capabilities"] == [["gpu"]]
    assert request["Count"] == 0
    hook_lines = [line for line in fake_hook_log.read_text().splitlines() if container.id in line]
    assert hook_lines == [
        hook_lines[0].split(" ")[0]
        + f" container={container.id} NVIDIA_VISIBLE_DEVICES={eng.TEST_GPU_UUID}"
    ]


def test_without_gpu_request_there_is_no_device_request(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
) -> None:
    lease = new_lease(gpus=())
    make_runtime(gpu_request=False).start(lease.spec)
    container = docker_client.containers.get(f"gpubot-{lease.spec.lease_id}")
    assert not container.attrs["HostConfig"].get("DeviceRequests")
    assert "NVIDIA_VISIBLE_DEVICES=void" in container.attrs["Config"]["Env"]
    assert container.labels["gpubot.gpus"] == ""


def test_the_port_is_published_only_on_the_configured_address(
    started: tuple[Lease, Any], docker_client: docker.DockerClient
) -> None:
    lease, container = started
    port = str(lease.spec.port)
    assert container.attrs["HostConfig"]["PortBindings"] == {
        "8888/tcp": [{"HostIp": "127.0.0.1", "HostPort": port}]
    }
    container.reload()
    assert container.attrs["NetworkSettings"]["Ports"]["8888/tcp"] == [
        {"HostIp": "127.0.0.1", "HostPort": port}
    ]
    # Another address of this host (the lease network's gateway) does not answer on it.
    [network] = container.attrs["NetworkSettings"]["Networks"].values()
    gateway = network["Gateway"]
    with pytest.raises(OSError):
        socket.create_connection((gateway, lease.spec.port), timeout=3).close()
    socket.create_connection(("127.0.0.1", lease.spec.port), timeout=3).close()


def test_the_workspace_is_private_to_uid_1000_and_mounted_alone(
    started: tuple[Lease, Any], workspace_root: Path
) -> None:
    _, container = started
    folder = workspace_root / "UHARDEN1"
    info = os.stat(folder)
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert (info.st_uid, info.st_gid) == (1000, 1000)
    mounts = [
        (m["Type"], m["Source"], m["Destination"], m["RW"]) for m in container.attrs["Mounts"]
    ]
    assert mounts == [("bind", str(folder), "/workspace", True)]
