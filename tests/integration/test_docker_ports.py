"""Something outside gpubot listens on a lease's port: the engine's refusal reaches the
services as PortInUse, so the claim moves on to another port (issue 11.5; the retry is
tested in tests/unit/test_services.py)."""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest

from bot.domain.errors import PortInUse

pytestmark = pytest.mark.docker


def test_a_port_taken_outside_gpubot_is_port_in_use_and_leaves_nothing(
        make_runtime, new_lease, docker_client) -> None:
    runtime = make_runtime()
    lease = new_lease()
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        with pytest.raises(PortInUse) as refused:
            runtime.start(replace(lease.spec, port=taken))
    assert str(taken) in refused.value.message
    assert docker_client.containers.list(
        all=True, filters={"label": f"gpubot.lease={lease.spec.lease_id}"}) == []
