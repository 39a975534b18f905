"""An in-memory ContainerRuntime with the Docker adapter's semantics, for service tests.

It passes the same contract tests as ``bot.adapters.docker.DockerRuntime``
(tests/contract/test_container_runtime_contract.py). Tests drive the world through
``kill`` (the container dies), ``vanish`` (someone removed it), ``fail_next_start``
(the engine refuses to start the next container), ``not_ready`` (Jupyter never answers)
and ``remove_image``; they read ``started``, ``stopped`` and ``progress``.
"""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.domain.errors import ContainerStartError, ImageMissing, PortInUse
from bot.ports import (
    ContainerHandle,
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    EngineWait,
    EventCallback,
    ManagedContainer,
    ProgressCallback,
)

_SLACK_USER_ID = re.compile(r"[A-Z0-9]{1,64}")


@dataclass
class _Container:
    spec: ContainerSpec
    handle: ContainerHandle
    state: ContainerState = field(default_factory=lambda: ContainerState(ContainerStatus.RUNNING))
    ready: bool = True


class FakeContainerRuntime:
    def __init__(
        self,
        *,
        image: str = "gpubot-jupyter:test",
        images: tuple[str, ...] | None = None,
        pull_missing: bool = False,
    ) -> None:
        self.image = image
        self.images: set[str] = set(images if images is not None else (image,))
        self.pull_missing = pull_missing
        self.started: list[ContainerSpec] = []
        self.stopped: list[int] = []
        self.progress: list[str] = []
        self._containers: dict[int, _Container] = {}
        self._ids = itertools.count(1)
        self._start_failure: str | None = None
        self._ready = True
        self._watchers: list[EventCallback] = []
        self.foreign_ports: set[int] = set()  # something outside gpubot listens there
        self.workspace_bytes: dict[str, int] = {}  # what workspace_usage answers
        self.ends: dict[int, datetime] = {}  # lease -> the end set_end was told
        self.queue: dict[int, EngineWait] = {}  # what waiting() reports (an engine queue)
        self.address: str | None = None  # where Jupyter answers (a cluster node); None: here
        self.authorized_keys: dict[int, str] = {}  # set_authorized_keys, by lease

    # ------------------------------------------------------------ the port
    def start(
        self, spec: ContainerSpec, *, on_progress: ProgressCallback | None = None
    ) -> ContainerHandle:
        def report(text: str) -> None:
            self.progress.append(text)
            if on_progress is not None:
                on_progress(text)

        if not _SLACK_USER_ID.fullmatch(spec.user_id):
            raise ContainerStartError(
                f"Refusing to start a container for user id {spec.user_id!r}."
            )
        if not spec.password_hash:
            raise ContainerStartError("Refusing to start Jupyter without a password hash.")
        existing = self._containers.get(spec.lease_id)
        if existing is not None:
            if existing.state.status is ContainerStatus.RUNNING:
                return existing.handle
            del self._containers[spec.lease_id]
        self._ensure_image(report)
        report("Creating the Jupyter container")
        busy = [
            c
            for c in self._containers.values()
            if c.spec.port == spec.port and c.state.status is ContainerStatus.RUNNING
        ]
        if busy or {spec.port, spec.ssh_port} & self.foreign_ports:  # either published port
            raise PortInUse(
                f"Port {spec.port} is already in use, so the Jupyter container could not start.",
                detail=f"Bind for 127.0.0.1:{spec.port} failed: port is already allocated",
            )
        if self._start_failure is not None:
            detail, self._start_failure = self._start_failure, None
            raise ContainerStartError(
                f"Docker could not start the Jupyter container for lease {spec.lease_id}.",
                detail=detail,
            )
        report("Starting the Jupyter container")
        handle = ContainerHandle(
            lease_id=spec.lease_id,
            container_id=f"fake{next(self._ids):060d}",
            name=f"gpubot-{spec.lease_id}",
        )
        self._containers[spec.lease_id] = _Container(spec=spec, handle=handle, ready=self._ready)
        self.started.append(spec)
        return handle

    def wait_ready(self, handle: ContainerHandle, *, port: int, timeout: timedelta) -> str | None:
        container = self._containers.get(handle.lease_id)
        if container is None or container.handle.container_id != handle.container_id:
            raise ContainerStartError(
                f"The Jupyter container {handle.name} disappeared before it was ready."
            )
        if container.state.status is ContainerStatus.EXITED:
            raise ContainerStartError(
                f"Jupyter stopped before it was ready (exit code {container.state.exit_code})."
            )
        if not container.ready or port != container.spec.port:
            raise ContainerStartError(
                f"Jupyter did not answer within {timeout.total_seconds():.0f} s."
            )
        return self.address

    def stop(self, lease_id: int) -> None:
        if self._containers.pop(lease_id, None) is not None:
            self.stopped.append(lease_id)

    def poll(self, lease_id: int) -> ContainerState:
        container = self._containers.get(lease_id)
        return container.state if container is not None else ContainerState(ContainerStatus.GONE)

    def workspace_usage(self, user_id: str) -> int | None:
        return self.workspace_bytes.get(user_id)

    def waiting(self) -> dict[int, EngineWait]:
        return {lease: wait for lease, wait in self.queue.items() if lease in self._containers}

    def set_end(self, lease_id: int, ends_at: datetime) -> None:
        if lease_id in self._containers:  # like Slurm's: a gone one has no limit to move
            self.ends[lease_id] = ends_at

    def set_authorized_keys(self, lease_id: int, text: str) -> None:
        if lease_id not in self._containers:  # like Docker's: nothing to copy into
            raise ContainerStartError(f"Lease {lease_id} has no container to hand keys to.")
        self.authorized_keys[lease_id] = text

    def list_managed(self) -> list[ManagedContainer]:
        return [
            ManagedContainer(
                lease_id=c.spec.lease_id,
                user_id=c.spec.user_id,
                gpu_uuids=c.spec.gpu_uuids,
                container_id=c.handle.container_id,
                name=c.handle.name,
                state=c.state,
            )
            for c in self._containers.values()
        ]

    def watch_events(self, *, on_event: EventCallback, stop: threading.Event) -> None:
        self._watchers.append(on_event)
        try:
            stop.wait()
        finally:
            self._watchers.remove(on_event)

    # ---------------------------------------------------- test controls
    def kill(self, lease_id: int, *, exit_code: int = 137, oom_killed: bool = False) -> None:
        """The container dies; watchers hear of it at once, like Docker's die event."""
        state = ContainerState(ContainerStatus.EXITED, exit_code=exit_code, oom_killed=oom_killed)
        self._containers[lease_id].state = state
        for on_event in list(self._watchers):
            on_event(lease_id, state)

    def vanish(self, lease_id: int) -> None:
        del self._containers[lease_id]

    def fail_next_start(self, detail: str = "OCI runtime create failed") -> None:
        self._start_failure = detail

    def not_ready(self) -> None:
        """Containers started from now on never answer wait_ready."""
        self._ready = False

    def remove_image(self, image: str | None = None) -> None:
        self.images.discard(image or self.image)

    def _ensure_image(self, report: ProgressCallback) -> None:
        if self.image in self.images:
            return
        if not self.pull_missing:
            raise ImageMissing(f"The Jupyter image {self.image} is not on this host.")
        for percent in (0, 50, 100):
            report(f"Pulling image {self.image}: {percent}%")
        self.images.add(self.image)
