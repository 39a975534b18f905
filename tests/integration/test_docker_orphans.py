"""Issue 11 item 2: a container on the bot's engine with ``gpubot.lease`` but no
``gpubot.host`` label (made by hand, or by a version before host labels) is this host's:
``list_managed`` lists it and reconcile removes it when its lease is unknown. One
labelled for another host is left alone (DESIGN.md §4)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import NotFound

from bot.adapters.docker import DockerRuntime
from tests.infra import docker_engine as eng

pytestmark = pytest.mark.docker


@pytest.fixture
def hand_made(
    docker_client: docker.DockerClient, lease_ids: eng.LeaseIds
) -> Iterator[Callable[..., int]]:
    """``hand_made(host=None)`` → the lease id of a running container labelled
    ``gpubot.lease`` (and ``gpubot.host`` when given) that no bot created."""
    made: list[int] = []

    def make(host: str | None = None) -> int:
        lease_id = lease_ids.new()
        labels = {"gpubot.lease": str(lease_id), "gpubot.user": "UHANDMADE"}
        if host is not None:
            labels["gpubot.host"] = host
        container = docker_client.containers.create(
            eng.TEST_IMAGE, entrypoint=["sleep", "600"], command=[],
            name=f"gpubot-{lease_id}", labels=labels, network_mode="none")
        container.start()
        made.append(lease_id)
        return lease_id

    yield make
    eng.remove_containers(docker_client, made)


def exists(client: docker.DockerClient, lease_id: int) -> bool:
    try:
        client.containers.get(f"gpubot-{lease_id}")
    except NotFound:
        return False
    return True


def test_list_managed_counts_an_unlabelled_host_as_its_own(
    make_runtime: Callable[..., DockerRuntime], hand_made: Callable[..., int]
) -> None:
    unlabelled, empty, foreign = hand_made(), hand_made(host=""), hand_made(host="other-host")
    listed = {m.lease_id: m for m in make_runtime(host="bot-a").list_managed()}
    assert unlabelled in listed and empty in listed
    assert listed[unlabelled].name == f"gpubot-{unlabelled}"
    assert listed[unlabelled].user_id == "UHANDMADE"
    assert foreign not in listed


def test_reconcile_removes_the_unlabelled_orphan_and_leaves_another_hosts_alone(
    make_runtime: Callable[..., DockerRuntime],
    hand_made: Callable[..., int],
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    from bot.db import migrate
    from bot.db.engine import Database
    from bot.services.reconcile import ReconcileReport
    from tests.fakes.services import build_harness

    url = f"sqlite:///{tmp_path / 'orphans.db'}"
    migrate.upgrade(url)
    # The harness names this host "gpu-host-1"; the database knows none of these leases.
    harness = build_harness(Database(url), runtime=make_runtime(host="gpu-host-1"))
    orphan, foreign = hand_made(), hand_made(host="another-gpu-host")
    report = ReconcileReport()
    harness.reconciler.containers(report)
    assert not report.failed_steps
    assert not exists(docker_client, orphan)
    assert exists(docker_client, foreign)
