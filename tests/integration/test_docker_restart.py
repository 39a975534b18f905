"""Issue 11 item 17: restart policy ``no`` (a dead container fails its lease; the engine
never brings it back behind the bot's back), and a dockerd restart loses no live lease
when dockerd runs with live-restore (what ``gpubot doctor`` recommends).

Both run on the spare engine (tests/infra/spare_engine.sh), which these tests restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import docker
import pytest

from bot.adapters.docker import DockerRuntime
from bot.ports import ContainerState, ContainerStatus
from tests.infra import docker_engine as eng
from tests.integration.conftest import Lease
from tests.support import jupyter

pytestmark = pytest.mark.docker
READY = timedelta(seconds=90)


@pytest.fixture(scope="module")
def spare(lease_ids: eng.LeaseIds) -> Iterator[docker.DockerClient]:
    with eng.spare_session(lease_ids) as client:
        yield client
    eng.spare_engine("start")  # whatever a failed test left, the next finds it running


@pytest.fixture
def runtime(spare: docker.DockerClient, workspace_root: Path) -> DockerRuntime:
    return DockerRuntime(eng.runtime_config(workspace_root, gpu_request=False), spare)


def start(runtime: DockerRuntime, lease: Lease) -> str:
    handle = runtime.start(lease.spec)
    runtime.wait_ready(handle, port=lease.spec.port, timeout=READY)
    return handle.container_id


def test_a_dockerd_restart_with_live_restore_loses_no_live_lease(
    runtime: DockerRuntime, new_lease: Callable[..., Lease], spare: docker.DockerClient,
) -> None:
    lease = new_lease(user="URESTART1", gpus=())
    container_id = start(runtime, lease)
    before = spare.api.inspect_container(container_id)["State"]
    deaths: list[tuple[int, ContainerState]] = []
    stop = threading.Event()
    watcher = threading.Thread(target=runtime.watch_events, daemon=True, kwargs={
        "on_event": lambda lease_id, state: deaths.append((lease_id, state)), "stop": stop})
    watcher.start()
    try:
        eng.spare_engine("restart")
        time.sleep(3)  # the watcher reconnects; a die event would reach it now
    finally:
        stop.set()
        watcher.join(timeout=10)
    after = spare.api.inspect_container(container_id)["State"]  # the same client, reconnected
    assert after["Status"] == "running"
    assert (after["Pid"], after["StartedAt"]) == (before["Pid"], before["StartedAt"])
    assert runtime.poll(lease.spec.lease_id).status is ContainerStatus.RUNNING
    [listed] = [m for m in runtime.list_managed() if m.lease_id == lease.spec.lease_id]
    assert listed.state.status is ContainerStatus.RUNNING
    assert [d for d in deaths if d[0] == lease.spec.lease_id] == []
    assert jupyter.logs_in(lease.url, lease.password)  # the published port still answers
    runtime.stop(lease.spec.lease_id)


def test_without_live_restore_a_dockerd_restart_leaves_the_lease_dead_not_restarted(
    runtime: DockerRuntime, new_lease: Callable[..., Lease], spare: docker.DockerClient,
) -> None:
    eng.spare_engine("restart", "--no-live-restore")
    lease = new_lease(user="URESTART2", gpus=())
    container_id = start(runtime, lease)
    eng.spare_engine("restart")  # stops its containers: this dockerd had no live-restore
    state = spare.api.inspect_container(container_id)["State"]
    assert state["Status"] == "exited", state  # "unless-stopped" brought it back: an orphan
    assert runtime.poll(lease.spec.lease_id).status is ContainerStatus.EXITED
    runtime.stop(lease.spec.lease_id)
