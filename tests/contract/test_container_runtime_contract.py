"""The ContainerRuntime contract, run on the hand-written fake the service tests use, on
the Docker adapter against a real engine (marked ``docker``) and on the Slurm adapter
against a real two-node cluster (marked ``slurm``, tests/infra/slurm_cluster.py)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from bot.domain.errors import ContainerStartError, ImageMissing
from bot.ports import ContainerRuntime, ContainerSpec, ContainerStatus
from bot.security import hash_jupyter_password
from tests.fakes.containers import FakeContainerRuntime

PASSWORD_HASH = hash_jupyter_password("contract-password")
GPU = "GPU-0c0c0c0c-0000-4000-8000-000000000001"
MISSING_IMAGE = "gpubot-no-such-image:contract"
READY = timedelta(seconds=90)


@dataclass
class Subject:
    runtime: ContainerRuntime
    with_image: Callable[[str], ContainerRuntime]  # another runtime, configured with that image
    kill: Callable[[int], None]  # the container dies (docker kill)
    vanish: Callable[[int], None]  # someone removes it behind our back (docker rm -f)
    new_lease: Callable[[], int]
    new_port: Callable[[], int]

    def spec(
        self, lease_id: int | None = None, *, user: str = "UCONTRACT1", port: int | None = None
    ) -> ContainerSpec:
        return ContainerSpec(
            lease_id=lease_id if lease_id is not None else self.new_lease(),
            user_id=user,
            gpu_uuids=(GPU,),
            port=port if port is not None else self.new_port(),
            password_hash=PASSWORD_HASH,
        )


def _fake_subject() -> Iterator[Subject]:
    runtime = FakeContainerRuntime()
    leases, ports = itertools.count(1), itertools.count(20000)
    yield Subject(
        runtime=runtime,
        with_image=lambda image: FakeContainerRuntime(image=image, images=(runtime.image,)),
        kill=runtime.kill,
        vanish=runtime.vanish,
        new_lease=lambda: next(leases),
        new_port=lambda: next(ports),
    )


def _docker_subject(workspace_root: Path) -> Iterator[Subject]:
    from bot.adapters.docker import DockerRuntime, container_name
    from tests.infra import docker_engine as eng

    ids = eng.LeaseIds()
    with eng.session_engine(ids) as client:

        def make(**changes: object) -> ContainerRuntime:
            return DockerRuntime(eng.runtime_config(workspace_root, **changes), client)

        def kill(lease: int) -> None:
            client.containers.get(container_name(lease)).kill()

        def vanish(lease: int) -> None:
            client.containers.get(container_name(lease)).remove(force=True)

        yield Subject(
            runtime=make(),
            with_image=lambda image: make(image=image),
            kill=kill,
            vanish=vanish,
            new_lease=ids.new,
            new_port=eng.free_port,
        )


def _slurm_subject() -> Iterator[Subject]:
    from tests.infra import slurm_engine as eng

    cluster = eng.shared_cluster()
    try:
        yield Subject(
            runtime=eng.make_runtime(cluster),
            with_image=lambda image: eng.make_runtime(cluster, image=image),
            kill=lambda lease: eng.kill_job(cluster, lease),
            vanish=lambda lease: eng.vanish(cluster, lease),
            new_lease=eng.new_lease,
            new_port=eng.new_port,
        )
    finally:
        eng.cancel_all(cluster)


@pytest.fixture(params=["fake", pytest.param("docker", marks=pytest.mark.docker),
                        pytest.param("slurm", marks=pytest.mark.slurm)])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    if request.param == "fake":
        yield from _fake_subject()
    elif request.param == "slurm":
        yield from _slurm_subject()
    else:
        yield from _docker_subject(tmp_path / "workspaces")


def _ours(subject: Subject, lease_id: int) -> list[object]:
    return [m for m in subject.runtime.list_managed() if m.lease_id == lease_id]


def test_start_runs_a_labelled_container_that_answers(subject: Subject) -> None:
    spec = subject.spec()
    handle = subject.runtime.start(spec)
    assert handle.lease_id == spec.lease_id
    assert handle.name == f"gpubot-{spec.lease_id}"
    subject.runtime.wait_ready(handle, port=spec.port, timeout=READY)
    assert subject.runtime.poll(spec.lease_id).status is ContainerStatus.RUNNING
    [managed] = [m for m in subject.runtime.list_managed() if m.lease_id == spec.lease_id]
    assert (managed.user_id, managed.gpu_uuids, managed.name) == ("UCONTRACT1", (GPU,), handle.name)
    assert managed.container_id == handle.container_id
    assert managed.state.status is ContainerStatus.RUNNING


def test_start_is_idempotent_while_running(subject: Subject) -> None:
    spec = subject.spec()
    first = subject.runtime.start(spec)
    again = subject.runtime.start(spec)
    assert again == first
    assert len(_ours(subject, spec.lease_id)) == 1


def test_stop_removes_the_container_and_is_idempotent(subject: Subject) -> None:
    spec = subject.spec()
    subject.runtime.start(spec)
    subject.runtime.stop(spec.lease_id)
    assert subject.runtime.poll(spec.lease_id).status is ContainerStatus.GONE
    assert _ours(subject, spec.lease_id) == []
    subject.runtime.stop(spec.lease_id)  # already gone: fine


def test_unknown_lease_is_gone(subject: Subject) -> None:
    lease = subject.new_lease()
    assert subject.runtime.poll(lease).status is ContainerStatus.GONE
    subject.runtime.stop(lease)


def test_a_killed_container_is_exited_and_start_replaces_it(subject: Subject) -> None:
    spec = subject.spec()
    first = subject.runtime.start(spec)
    subject.kill(spec.lease_id)
    state = subject.runtime.poll(spec.lease_id)
    assert state.status is ContainerStatus.EXITED
    assert state.exit_code == 137
    with pytest.raises(ContainerStartError):
        subject.runtime.wait_ready(first, port=spec.port, timeout=READY)
    second = subject.runtime.start(spec)
    assert second.container_id != first.container_id
    assert subject.runtime.poll(spec.lease_id).status is ContainerStatus.RUNNING
    assert len(_ours(subject, spec.lease_id)) == 1


def test_a_container_removed_behind_our_back_is_gone(subject: Subject) -> None:
    spec = subject.spec()
    handle = subject.runtime.start(spec)
    subject.vanish(spec.lease_id)
    assert subject.runtime.poll(spec.lease_id).status is ContainerStatus.GONE
    with pytest.raises(ContainerStartError):
        subject.runtime.wait_ready(handle, port=spec.port, timeout=READY)
    subject.runtime.stop(spec.lease_id)


def test_a_missing_image_fails_clearly_and_leaves_nothing(subject: Subject) -> None:
    runtime = subject.with_image(MISSING_IMAGE)
    spec = subject.spec()
    with pytest.raises(ImageMissing) as caught:
        runtime.start(spec)
    assert MISSING_IMAGE in caught.value.message
    assert runtime.poll(spec.lease_id).status is ContainerStatus.GONE
    assert [m for m in runtime.list_managed() if m.lease_id == spec.lease_id] == []


def test_a_failed_start_leaves_nothing_behind(subject: Subject) -> None:
    holder = subject.spec()
    subject.runtime.start(holder)
    clash = subject.spec(port=holder.port)  # the engine cannot publish the same port twice
    with pytest.raises(ContainerStartError) as caught:
        subject.runtime.start(clash)
    assert str(holder.port) in caught.value.message
    assert caught.value.detail
    assert subject.runtime.poll(clash.lease_id).status is ContainerStatus.GONE
    assert _ours(subject, clash.lease_id) == []
    assert subject.runtime.poll(holder.lease_id).status is ContainerStatus.RUNNING


@pytest.mark.parametrize("user", ["../etc", "U1/../../root", "u123", "", "U 1"])
def test_a_user_id_that_is_not_a_slack_id_is_refused(subject: Subject, user: str) -> None:
    spec = subject.spec(user=user)
    with pytest.raises(ContainerStartError):
        subject.runtime.start(spec)
    assert subject.runtime.poll(spec.lease_id).status is ContainerStatus.GONE


def test_a_death_is_reported_by_watch_events_within_seconds(subject: Subject) -> None:
    import threading
    import time

    spec = subject.spec()
    subject.runtime.start(spec)
    seen: list[tuple[int, object]] = []
    stop = threading.Event()
    watcher = threading.Thread(target=subject.runtime.watch_events,
                               kwargs={"on_event": lambda lease, state: seen.append((lease, state)),
                                       "stop": stop}, daemon=True)
    watcher.start()
    time.sleep(0.5)  # the event stream is open
    killed = time.monotonic()
    subject.kill(spec.lease_id)
    while not seen and time.monotonic() - killed < 10:
        time.sleep(0.05)
    stop.set()
    watcher.join(timeout=5)
    assert not watcher.is_alive(), "stop ends the watcher"
    [(lease, state)] = [s for s in seen if s[0] == spec.lease_id]
    assert state.status is ContainerStatus.EXITED and state.exit_code == 137
    print(f"\n[events] death reported after {time.monotonic() - killed:.2f}s")
    subject.runtime.stop(spec.lease_id)
