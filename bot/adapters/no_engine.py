"""``NoEngine``: the ContainerRuntime of a machine without Docker (``scripts/serve``'s
embedded default). Everything that needs no container works: help, status, mine,
approvals; a claim is granted and then fails with this module's explanation, so the
GPU is freed again and nothing is left half-started."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from bot.domain.errors import ContainerStartError
from bot.ports import (
    ContainerHandle,
    ContainerSpec,
    ContainerState,
    EngineWait,
    EventCallback,
    ManagedContainer,
    ProgressCallback,
)


class EngineUnavailable(RuntimeError):
    """Asked about containers with no engine to ask."""


HOW_TO_GET_ONE = ("install Docker (Debian or Ubuntu: sudo apt-get install docker.io, then add "
                  "yourself to the docker group; elsewhere https://docs.docker.com/engine/install/)"
                  " and start gpubot again")


class NoEngine:
    def __init__(self, reason: str) -> None:
        self.reason = reason  # why Docker could not be reached, for the refusal

    def start(self, spec: ContainerSpec, *, on_progress: ProgressCallback | None = None
              ) -> ContainerHandle:
        raise ContainerStartError(f"No Docker engine is reachable on this machine, so Jupyter "
                                  f"cannot start: {HOW_TO_GET_ONE}.", detail=self.reason)

    def wait_ready(self, handle: ContainerHandle, *, port: int, timeout: timedelta) -> None:
        raise ContainerStartError("No Docker engine is reachable on this machine.")

    def stop(self, lease_id: int) -> None:
        # Nothing this process started. A container an earlier run made on an engine that
        # is down now is an orphan once its lease ended: the reconciler removes it when
        # Docker is back.
        return None

    def poll(self, lease_id: int) -> ContainerState:
        raise EngineUnavailable(self.reason)  # unknown is not dead: keep active leases

    def waiting(self) -> dict[int, EngineWait]:
        return {}

    def set_end(self, lease_id: int, ends_at: datetime) -> None:
        return None  # no container of ours runs here, so none has a limit to move

    def set_authorized_keys(self, lease_id: int, text: str) -> None:
        raise EngineUnavailable(self.reason)  # no lease of ours runs: nothing to update

    def workspace_usage(self, user_id: str) -> int | None:
        return None  # no engine, no workspace made by it

    def list_managed(self) -> list[ManagedContainer]:
        raise EngineUnavailable(self.reason)  # the reconciler skips its container checks

    def watch_events(self, *, on_event: EventCallback, stop: threading.Event) -> None:
        stop.wait()
