"""The small interfaces the services depend on.

Adapters (``bot.adapters.*``) implement them against NVML, Docker and Slack; the tests
implement them with hand-written fakes (``tests/fakes/``) that pass the same contract
tests. Nothing here imports a third-party library.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from bot.domain.containers import (  # noqa: F401 (re-exported)
    ContainerState,
    ContainerStatus,
    EngineWait,
)
from bot.domain.gpus import DriverInfo, GpuInfo, GpuProcess  # noqa: F401 (re-exported)
from bot.domain.idle import JupyterActivity
from bot.domain.ssh import SshAccess
from bot.domain.usage import UsageReport

if TYPE_CHECKING:
    from bot.domain.lease import Lease


# --------------------------------------------------------------------------- GPUs
class GpuInventory(Protocol):
    def list_gpus(self) -> list[GpuInfo]:
        """Every leasable unit on this host, live. Never raises for one bad GPU:
        a lost or failing GPU is returned with ``healthy=False``."""
        ...

    def driver(self) -> DriverInfo: ...


# --------------------------------------------------------------------- containers
@dataclass(frozen=True)
class ContainerSpec:
    """Everything the runtime needs to start one lease's Jupyter container."""

    lease_id: int
    user_id: str  # Slack user id; also the workspace folder name
    gpu_uuids: tuple[str, ...]  # empty with GPUBOT_FAKE_GPUS: no device request
    port: int
    password_hash: str  # jupyter_server "argon2:..." hash, never the plaintext
    uid: int = 1000  # this person's own host uid (and gid): the container and workspace
    image: str | None = None  # the lease's environment's image; None: the runtime's own
    environment: str | None = None  # its name, labelled gpubot.env
    time_limit: timedelta | None = None  # the lease's duration; an engine with a kill of
    #                                      its own (Slurm's) sets it to this plus a grace
    # SSH (GPUBOT_SSH, bot/services/keys.py): sshd runs when ssh_port is set
    ssh_port: int | None = None  # host port published for the container's sshd
    ssh_host_key: str = field(default="", repr=False)  # OpenSSH private key file text
    authorized_keys: str = ""  # the authorized_keys file
    login: str = ""  # the user name sshd accepts (the container's passwd entry)


@dataclass(frozen=True)
class ContainerHandle:
    lease_id: int
    container_id: str
    name: str


@dataclass(frozen=True)
class ManagedContainer:
    """A container carrying our labels, as found on the engine."""

    lease_id: int
    user_id: str
    gpu_uuids: tuple[str, ...]
    container_id: str
    name: str
    state: ContainerState


ProgressCallback = Callable[[str], None]
EventCallback = Callable[[int, ContainerState], object]  # (lease id, state after a death)


class ContainerRuntime(Protocol):
    """Start / stop / poll, with JupyterHub-Spawner-like semantics."""

    def start(
        self, spec: ContainerSpec, *, on_progress: ProgressCallback | None = None
    ) -> ContainerHandle:
        """Create and start the container. On failure nothing is left behind and
        ``bot.domain.errors.ContainerStartError`` carries the engine's explanation.
        Idempotent: a running container for the same lease is returned as is."""
        ...

    def wait_ready(self, handle: ContainerHandle, *, port: int, timeout: timedelta) -> str | None:
        """Block until Jupyter answers on ``port``; raise ContainerStartError if the
        container dies or the timeout passes. Returns the address it answered on when
        that is not this host (the cluster node a Slurm job runs on), else None."""
        ...

    def stop(self, lease_id: int) -> None:
        """Stop gracefully, then remove the container. Never touches the workspace.
        Idempotent: a container that is already gone is fine."""
        ...

    def poll(self, lease_id: int) -> ContainerState: ...

    def list_managed(self) -> list[ManagedContainer]: ...

    def workspace_usage(self, user_id: str) -> int | None:
        """Bytes on disk in the person's workspace; None when there is none."""
        ...

    def watch_events(self, *, on_event: EventCallback, stop: threading.Event) -> None:
        """Block until ``stop`` is set, calling ``on_event(lease_id, state)`` whenever one
        of our containers dies (exit, OOM kill), so users hear of it within seconds."""
        ...

    def waiting(self) -> dict[int, EngineWait]:
        """Leases whose start waits in the engine's own queue (Slurm's pending jobs), with
        its reason, place and expected start. Docker has no queue: always empty."""
        ...

    def set_end(self, lease_id: int, ends_at: datetime) -> None:
        """The lease now ends at ``ends_at`` (it was extended). An engine that kills on a
        time limit of its own (Slurm) moves it to ``ends_at`` plus its grace; gpubot's
        expiry stays first. Docker has no such limit: nothing to do."""
        ...

    def set_authorized_keys(self, lease_id: int, text: str) -> None:
        """Replace the authorized_keys file of the lease's container (keys changed during
        the lease); sshd reads it at each login. Raises if the container is not there."""
        ...


# ----------------------------------------------------------------------- notifier
@dataclass(frozen=True)
class AccessInfo:
    url: str
    password: str = field(repr=False)
    ssh: SshAccess | None = None  # the lease runs sshd (GPUBOT_SSH)


class Notifier(Protocol):
    """What the services tell people. The Slack adapter renders these; the password
    only ever travels through ``access_ready`` and ``access_resend`` (DM blocks)."""

    def progress(self, lease: Lease, text: str) -> None: ...

    def access_ready(self, lease: Lease, access: AccessInfo) -> None: ...

    def access_resend(self, lease: Lease, access: AccessInfo) -> None: ...

    def claim_failed(self, lease: Lease, reason: str) -> None: ...

    def approval_requested(self, lease: Lease) -> None: ...

    def approval_decided(self, lease: Lease, *, approved: bool, by: str, reason: str | None) -> None: ...

    def reminder(self, lease: Lease, remaining: timedelta) -> None: ...

    def expired(self, lease: Lease, workspace: str) -> None: ...

    def container_died(self, lease: Lease, state: ContainerState) -> None: ...

    def queue_timed_out(self, lease: Lease) -> None: ...

    def idle_warning(self, lease: Lease, reclaim_at: datetime) -> None: ...

    def idle_reclaimed(self, lease: Lease, workspace: str) -> None: ...

    def approval_withdrawn(self, lease: Lease) -> None: ...

    def admin_alert(self, text: str) -> None: ...

    def usage_report(self, report: UsageReport, png: bytes) -> None:
        """The usage report with its chart (a PNG) to the admin channel. Raises
        DomainError when it cannot arrive there (no admin channel, Slack refuses)."""
        ...


class UsageChart(Protocol):
    def render(self, report: UsageReport) -> bytes:
        """The report's chart as PNG bytes."""
        ...


class JupyterProbe(Protocol):
    """How busy a lease's Jupyter is, from its own REST API (the idle sampler's second
    half; GPU utilization alone misses a notebook that launches small kernels)."""

    def activity(self, lease: Lease, password: str) -> JupyterActivity | None:
        """None when it cannot tell (not answering, refused): never counted as quiet."""
        ...

    def forget(self, lease_id: int) -> None:
        """The lease ended: drop what was kept to reach it (a login session)."""
        ...


# --------------------------------------------------------------------- access
class Proxy(Protocol):
    """The HTTPS reverse proxy in front of the leases (Caddy): one route per lease, from
    ``<label>.<domain>`` to the lease's Jupyter (``upstream``: ``host:port``)."""

    def ensure_server(self) -> None:
        """Make the proxy serve our domain (TLS, listener); idempotent, keeps routes."""
        ...

    def add_route(self, label: str, upstream: str) -> None:
        """Route ``label``'s host to ``upstream``, replacing any route it had."""
        ...

    def remove_route(self, label: str) -> None:
        """Idempotent: a route that is already gone is fine."""
        ...

    def routes(self) -> dict[str, str]:
        """Every route the proxy serves for our domain: label -> upstream."""
        ...


@dataclass(frozen=True)
class ImageInfo:
    cuda: str | None  # the image's gpubot.cuda label ("12.4", "none"), None: not stated
    present: bool = True  # False: not on this host's engine (it would be pulled)


class ImageInspector(Protocol):
    def inspect(self, image: str) -> ImageInfo: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC."""
        ...
