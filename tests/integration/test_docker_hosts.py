"""One engine, several bots: each sees only the containers labelled with its host name."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker


def test_list_managed_sees_only_its_own_host(make_runtime, new_lease, docker_client) -> None:
    mine, theirs = make_runtime(host="bot-a"), make_runtime(host="bot-b")
    lease = new_lease()
    mine.start(lease.spec)
    try:
        container = docker_client.containers.get(f"gpubot-{lease.spec.lease_id}")
        assert container.labels["gpubot.host"] == "bot-a"
        assert [m.lease_id for m in mine.list_managed()] == [lease.spec.lease_id]
        assert lease.spec.lease_id not in [m.lease_id for m in theirs.list_managed()]
    finally:
        mine.stop(lease.spec.lease_id)
