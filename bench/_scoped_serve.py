"""``gpubot serve`` for the benchmark, with its reconciler scoped to the bench's containers.

The Docker engine here is shared with other test runs. The reconciler stops every
container labelled ``gpubot.lease`` whose lease is not live in *its own* database, so an
unscoped bench bot would stop other runs' containers at start-up. This entry point
filters ``DockerRuntime.list_managed`` to the users in ``GPUBOT_BENCH_SCOPE_USERS`` and
then runs the unchanged ``gpubot serve`` (``bot.cli``). Nothing on the claim or ack
path is touched.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    from bot.adapters import docker as docker_adapter

    scope = frozenset(u for u in os.environ.get("GPUBOT_BENCH_SCOPE_USERS", "").split(",") if u)
    listed = docker_adapter.DockerRuntime.list_managed

    def list_managed(self):  # type: ignore[no-untyped-def]
        return [m for m in listed(self) if m.user_id in scope]

    docker_adapter.DockerRuntime.list_managed = list_managed  # type: ignore[method-assign]
    from bot.cli import main as gpubot

    sys.argv = ["gpubot", "serve"]
    gpubot()


if __name__ == "__main__":
    main()
