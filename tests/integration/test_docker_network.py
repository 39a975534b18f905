"""Issue 11 item 14: code in one lease's container reaches neither another lease (its
container address, any port) nor the host's services (the bridge gateway, any other host
address, another lease's published port); from outside only each lease's published port
answers, and egress stays (a server on another engine's bridge stands in for the
internet's pip index).

The attacker is ``exec_run`` in lease A as the container's user (uid 1000, no
capabilities, the container's network namespace): what code in A's kernel can do. Each
blocked target has a control showing it answers when asked from the host."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import docker
import pytest

from bot.adapters import docker_firewall
from bot.adapters.docker import DockerRuntime
from tests.infra import docker_engine as eng
from tests.integration.conftest import Lease
from tests.integration.test_doctor_docker import busybox_rootfs

pytestmark = pytest.mark.docker
READY = timedelta(seconds=90)
EXTRA = 8000  # a second server inside lease B (a user's TensorBoard, say)
EGRESS_IMAGE = "gpubot-egress-target:test"

PROBE = r"""
import json, socket, sys
result = {}
for name, host, port in json.loads(sys.argv[1]):
    try:
        socket.create_connection((host, port), timeout=3).close()
        result[name] = "open"
    except OSError as exc:
        result[name] = type(exc).__name__
print(json.dumps(result))
"""


def connects(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError:
        return False
    return True


def comes_up(host: str, port: int, within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while not connects(host, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def address(container: Any) -> tuple[str, str]:
    """(container address, gateway) on its one network."""
    container.reload()
    [net] = container.attrs["NetworkSettings"]["Networks"].values()
    return net["IPAddress"], net["Gateway"]


def host_addresses() -> list[str]:
    """This host's IPv4 addresses but loopback and other leases' bridges (those come and
    go with other tests' leases)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True,
                         check=True).stdout
    found = [(line.split()[1], line.split()[3].split("/")[0]) for line in out.splitlines()]
    return [ip for name, ip in found if not ip.startswith("127.") and not name.startswith("gp")]


@pytest.fixture
def host_service() -> Iterator[int]:
    """A TCP service of the host on every address (a database, the metrics port...)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


@pytest.fixture
def egress_target(nohook_client: docker.DockerClient) -> Iterator[str]:
    """An HTTP server on the second engine's bridge: another network, outside our leases."""
    nohook_client.api.import_image_from_data(
        busybox_rootfs(), repository=EGRESS_IMAGE.split(":")[0], tag=EGRESS_IMAGE.split(":")[1])
    container = nohook_client.containers.run(
        EGRESS_IMAGE, entrypoint=["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/"],
        command=[], detach=True, labels={"gpubot.test": "egress"})
    try:
        container.reload()
        yield container.attrs["NetworkSettings"]["IPAddress"]
    finally:
        container.remove(force=True)


def start(runtime: DockerRuntime, lease: Lease, client: docker.DockerClient) -> Any:
    handle = runtime.start(lease.spec)
    runtime.wait_ready(handle, port=lease.spec.port, timeout=READY)
    return client.containers.get(handle.container_id)


def test_a_lease_reaches_no_other_lease_and_no_host_service_but_the_internet(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
    host_service: int,
    egress_target: str,
) -> None:
    lease_a, lease_b = new_lease(user="UNETA1"), new_lease(user="UNETB1")
    a = start(make_runtime(), lease_a, docker_client)
    b = start(make_runtime(bind_address="0.0.0.0"), lease_b, docker_client)
    b.exec_run(["/usr/local/bin/gpubot-python", "-m", "http.server", str(EXTRA)], detach=True)
    b_ip, b_gateway = address(b)
    a_ip, a_gateway = address(a)
    assert a_gateway != b_gateway  # one network per lease, not Docker's shared bridge
    others = [ip for ip in host_addresses() if ip not in (a_gateway, b_gateway)]
    targets = [("lease B jupyter", b_ip, 8888), ("lease B server", b_ip, EXTRA),
               ("host via own gateway", a_gateway, host_service),
               ("host via B's gateway", b_gateway, host_service),
               ("B's published port via own gateway", a_gateway, lease_b.spec.port),
               *[(f"host at {ip}", ip, host_service) for ip in others],
               ("egress", egress_target, 8080)]

    # Controls: every target answers the host.
    for name, host, port in targets:
        assert comes_up(host, port), f"control: {name} is not up"
    code, out = a.exec_run(["/usr/local/bin/gpubot-python", "-c", PROBE, json.dumps(targets)])
    assert code == 0, out
    seen = json.loads(out.decode())
    assert seen.pop("egress") == "open"
    assert {name: r for name, r in seen.items() if r == "open"} == {}
    # From outside, the lease's published port is what answers.
    assert connects("127.0.0.1", lease_a.spec.port) and connects(b_gateway, lease_b.spec.port)


def test_each_lease_network_is_labelled_and_goes_with_its_container(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
) -> None:
    lease = new_lease(user="UNETC1")
    runtime = make_runtime()
    runtime.start(lease.spec)
    name = f"gpubot-{lease.spec.lease_id}"
    [network] = docker_client.networks.list(names=[name])
    assert network.attrs["Labels"] == {"gpubot.lease": str(lease.spec.lease_id),
                                       "gpubot.host": eng.TEST_HOST, "gpubot.managed": "1"}
    options = network.attrs["Options"]
    assert options["com.docker.network.bridge.name"] == f"gpb{lease.spec.lease_id}"
    assert options["com.docker.network.bridge.enable_icc"] == "false"
    assert network.attrs["Internal"] is False  # egress for pip installs
    runtime.stop(lease.spec.lease_id)
    assert docker_client.networks.list(names=[name]) == []


def test_a_network_left_without_its_container_is_pruned_by_the_listing(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.adapters import docker_network

    lease = new_lease(user="UNETD1")
    runtime = make_runtime()
    runtime.start(lease.spec)
    name = f"gpubot-{lease.spec.lease_id}"
    docker_client.containers.get(name).remove(force=True)  # a crash before the network went
    runtime.list_managed()
    assert docker_client.networks.list(names=[name]) != []  # young: a start may be in flight
    monkeypatch.setattr(docker_network, "PRUNE_AFTER", timedelta(0))
    runtime.list_managed()
    assert docker_client.networks.list(names=[name]) == []


def test_the_rules_come_back_when_a_firewall_reload_dropped_them(
    make_runtime: Callable[..., DockerRuntime], new_lease: Callable[..., Lease],
) -> None:
    rule = docker_firewall.rules()[0]
    subprocess.run(rule.command("-D"), check=False, capture_output=True)
    assert rule in docker_firewall.missing()
    make_runtime().start(new_lease(user="UNETE1").spec)
    assert docker_firewall.missing() == []


def test_a_failed_start_leaves_no_network_behind(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
) -> None:
    from bot.domain.errors import ContainerStartError

    lease = new_lease(user="UNETF1")
    with socket.socket() as taken:  # the port is in use: the start fails after create
        taken.bind(("127.0.0.1", lease.spec.port))
        taken.listen()
        with pytest.raises(ContainerStartError):
            make_runtime().start(lease.spec)
    name = f"gpubot-{lease.spec.lease_id}"
    assert docker_client.containers.list(all=True, filters={"name": name}) == []
    assert docker_client.networks.list(names=[name]) == []


def test_a_lease_that_could_reach_the_host_is_not_handed_out(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As on a host where nobody installed the rules: the lease's bridge is one the rules
    do not cover, so code in it really reaches the host, and the start proves it."""
    from bot.adapters import docker_network
    from bot.domain.errors import ContainerStartError

    monkeypatch.setattr(docker_network, "bridge_name", lambda lease_id: f"gpx{lease_id}")
    lease = new_lease(user="UNETG1")
    with pytest.raises(ContainerStartError) as caught:
        make_runtime().start(lease.spec)
    assert "keep lease containers off its own services" in caught.value.message
    assert "reached" in (caught.value.detail or "")
    name = f"gpubot-{lease.spec.lease_id}"
    assert docker_client.containers.list(all=True, filters={"name": name}) == []
    assert docker_client.networks.list(names=[name]) == []
