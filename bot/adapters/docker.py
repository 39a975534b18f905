"""``ContainerRuntime`` on a Docker engine: one hardened Jupyter container per lease.

The bot itself creates, starts and, on any failure, removes its containers (never
``containers.run``, never a silent pull). Containers are named ``gpubot-<lease id>`` and
labelled ``gpubot.lease`` / ``gpubot.user`` / ``gpubot.gpus`` (DESIGN.md §4) plus
``gpubot.managed=1`` and ``gpubot.host=<GPUBOT_HOST_NAME>``: a bot lists, reconciles and
watches only the containers of its own host name, so two bots (or a bot and a test
suite) sharing one engine never remove each other's containers; a container with no
``gpubot.host`` label counts as this host's (DESIGN.md §4). Each lease has its own
bridge network (``docker_network``) behind host firewall rules (``docker_firewall``);
its password hash is copied in as a 0600 file, never passed on argv or in the
environment. This module and ``bot/adapters/docker_*.py`` are the only ones that import
``docker``.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import docker
from docker.errors import DockerException, NotFound
from docker.models.containers import Container

from bot.adapters import docker_firewall, docker_network, docker_ssh
from bot.adapters.docker_create import (
    DockerRuntimeConfig,
    container_user,
    create_args,
    secrets_archive,
)
from bot.adapters.docker_messages import (
    create_failure_message,
    port_taken,
    start_failure_message,
)
from bot.adapters.docker_pull import ensure_image
from bot.adapters.docker_ready import login_url, tail_logs
from bot.adapters.docker_state import (
    LABEL_HOST,
    LABEL_LEASE,
    explain,
    has_died,
    is_this_hosts,
    managed_container,
    state_from_inspect,
)
from bot.adapters.docker_workspace import (
    prepare_workspace,
    validate_spec,
    workspace_usage,
)
from bot.adapters.jupyter_probe import http_status
from bot.crashpoints import crashpoint
from bot.domain.errors import ContainerStartError, PortInUse
from bot.domain.lease import container_name
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

log = logging.getLogger(__name__)

__all__ = ["DockerRuntime", "DockerRuntimeConfig", "container_name"]


class DockerRuntime:
    def __init__(
        self, config: DockerRuntimeConfig, client: docker.DockerClient | None = None
    ) -> None:
        self._config = config
        self._client = client if client is not None else docker.from_env()
        self._firewall_notes: set[str] = set()  # each cannot-manage reason logged once

    # ------------------------------------------------------------------ start
    def start(
        self, spec: ContainerSpec, *, on_progress: ProgressCallback | None = None
    ) -> ContainerHandle:
        report = on_progress or _ignore
        self._validate(spec)
        name = container_name(spec.lease_id)
        try:
            existing = self._find(spec.lease_id, for_start=True)
            if existing is not None:
                if existing.status == "running":
                    return ContainerHandle(
                        lease_id=spec.lease_id, container_id=existing.id, name=name
                    )
                log.info(
                    "removing stale %s container %s before restarting it", existing.status, name
                )
                existing.remove(force=True)
            ensure_image(
                self._client, spec.image or self._config.image,
                pull=self._config.pull_missing, report=report
            )
            workspace = prepare_workspace(self._config.workspace_root, spec.user_id, spec.uid)
            self._guard_host()
            network = docker_network.ensure_network(
                self._client, lease_id=spec.lease_id, host=self._config.host,
                subnets=self._config.lease_subnets)
            report("Creating the Jupyter container")
            try:
                container = self._client.containers.create(
                    **create_args(self._config, spec, workspace, network))
            except Exception:
                self._remove_network_quietly(spec.lease_id)
                raise
            crashpoint("docker.after_create")
        except DockerException as exc:
            detail = explain(exc)
            message = create_failure_message(
                detail, lease_id=spec.lease_id, image=spec.image or self._config.image
            )
            raise ContainerStartError(message, detail=detail) from exc
        except OSError as exc:  # requests' ConnectionError & co.: no engine to talk to
            raise ContainerStartError(
                "The Docker engine is not reachable; the Jupyter container was not created.",
                detail=str(exc),
            ) from exc
        try:
            container.put_archive("/", secrets_archive(spec.password_hash, spec.uid))
            if spec.ssh_port is not None:
                container.put_archive("/", docker_ssh.ssh_archive(spec))
            report("Starting the Jupyter container")
            container.start()
            self._prove_isolated(container, spec.uid)
        except Exception as exc:  # anything after create: leave nothing behind
            self._remove_quietly(container)
            self._remove_network_quietly(spec.lease_id)
            if isinstance(exc, ContainerStartError):
                raise
            detail = explain(exc)
            message = start_failure_message(
                detail,
                lease_id=spec.lease_id,
                port=spec.port,
                bind_address=self._config.bind_address,
            )
            error = PortInUse if port_taken(detail) else ContainerStartError
            raise error(message, detail=detail) from exc
        return ContainerHandle(lease_id=spec.lease_id, container_id=container.id, name=name)

    def _validate(self, spec: ContainerSpec) -> None:
        validate_spec(spec)
        docker_ssh.validate(spec)

    def _guard_host(self) -> None:
        if self._config.block_host_access:
            docker_firewall.try_ensure(self._firewall_notes)

    def _prove_isolated(self, container: Container, uid: int) -> None:
        if not self._config.block_host_access:
            return
        try:
            docker_firewall.require_isolated(container, user=container_user(uid))
        except DockerException as exc:
            container.reload()
            if container.status != "running":  # it died at once: nothing runs to reach
                return  # anything, and wait_ready reports the death with its log
            raise exc

    # ------------------------------------------------------------- wait_ready
    def wait_ready(self, handle: ContainerHandle, *, port: int, timeout: timedelta) -> None:
        """Poll Jupyter's /login until it answers 200 (on this host: returns None). Does
        not remove the container on failure: the caller decides (normally ``stop``)."""
        deadline = time.monotonic() + timeout.total_seconds()
        url = login_url(self._config.bind_address, port)
        last = "no answer yet"
        while True:
            try:
                container = self._client.containers.get(handle.container_id)
            except NotFound as exc:
                raise ContainerStartError(
                    f"The Jupyter container {handle.name} disappeared before it was ready.",
                    detail=explain(exc),
                ) from exc
            if has_died(container.attrs):
                state = state_from_inspect(container.attrs)
                oom = ", out of memory" if state.oom_killed else ""
                raise ContainerStartError(
                    f"Jupyter stopped before it was ready (exit code {state.exit_code}{oom}).",
                    detail=tail_logs(container),
                )
            remaining = deadline - time.monotonic()
            status = http_status(url, timeout=max(0.1, min(2.0, remaining)))
            if status == 200:
                return
            last = str(status)
            if time.monotonic() >= deadline:
                raise ContainerStartError(
                    f"Jupyter did not answer within {timeout.total_seconds():.0f} s.",
                    detail=f"GET {url}: {last}\n{tail_logs(container)}",
                )
            time.sleep(self._config.ready_poll_interval)

    # ---------------------------------------------------------- stop and poll
    def stop(self, lease_id: int) -> None:
        container = self._find(lease_id)
        if container is not None:
            try:
                container.stop(timeout=self._config.stop_timeout)
            except NotFound:
                container = None
            except DockerException as exc:  # e.g. already stopping; removal below decides
                log.warning("stopping %s: %s", container.name, explain(exc))
        if container is not None:
            self._remove_quietly(container, raise_errors=True)
        self._remove_network_quietly(lease_id)

    def poll(self, lease_id: int) -> ContainerState:
        container = self._find(lease_id)
        if container is None:
            return ContainerState(status=ContainerStatus.GONE)
        return state_from_inspect(container.attrs)

    def list_managed(self) -> list[ManagedContainer]:
        containers = self._client.containers.list(
            all=True, filters={"label": [LABEL_LEASE]}, ignore_removed=True
        )
        ours = [c for c in containers if is_this_hosts(c.labels, self._config.host)]
        found = [m for m in (managed_container(c.id, c.name, c.attrs) for c in ours) if m]
        try:  # every reconcile lists: networks a crash left without a container go here
            docker_network.prune(self._client, self._config.host,
                                 {m.lease_id for m in found})
        except DockerException as exc:
            log.warning("could not prune lease networks: %s", explain(exc))
        return found

    def waiting(self) -> dict[int, EngineWait]:
        return {}  # Docker starts a container at once or refuses: it has no queue

    def set_end(self, lease_id: int, ends_at: datetime) -> None:
        """Nothing: a container has no time limit of its own; gpubot's expiry stops it."""

    def set_authorized_keys(self, lease_id: int, text: str) -> None:
        """Keys changed during the lease: sshd reads the file at each login."""
        container = self._find(lease_id)
        if container is None:
            raise ContainerStartError(f"Lease {lease_id} has no container to hand keys to.")
        docker_ssh.put_authorized_keys(container, text)

    def workspace_usage(self, user_id: str) -> int | None:
        """Bytes on disk in the user's workspace (like ``du``), None when it has none."""
        return workspace_usage(self._config.workspace_root, user_id)

    def watch_events(self, *, on_event: EventCallback, stop: threading.Event) -> None:
        """Until ``stop`` is set: for every ``die`` of one of our containers, call
        ``on_event(lease_id, state)`` with its inspected state (exit code, OOM kill).
        Reconnects after engine errors; the reconciler covers any gap."""
        while not stop.is_set():
            stream = None
            try:
                stream = self._client.events(decode=True, filters={
                    "type": "container", "event": ["die"], "label": [LABEL_LEASE]})
                closer = threading.Thread(target=_close_when, args=(stop, stream), daemon=True)
                closer.start()
                for event in stream:
                    attributes = (event.get("Actor") or {}).get("Attributes") or {}
                    lease = attributes.get(LABEL_LEASE)
                    if not is_this_hosts(attributes, self._config.host):
                        continue
                    if lease and lease.isdigit():
                        on_event(int(lease), self.poll(int(lease)))
            except Exception:  # engine restarted, connection dropped, callback failed
                if not stop.is_set():
                    log.warning("Docker event stream broke; reconnecting", exc_info=True)
                    stop.wait(2.0)
            finally:
                if stream is not None:
                    stream.close()

    # ---------------------------------------------------------------- helpers
    def _find(self, lease_id: int, *, for_start: bool = False) -> Container | None:
        """The lease's container, or None. A container of that name without our lease
        label is not ours: start refuses to touch it, stop and poll ignore it."""
        name = container_name(lease_id)
        try:
            container = self._client.containers.get(name)
        except NotFound:
            return None
        labels = container.labels
        if labels.get(LABEL_LEASE) == str(lease_id) and is_this_hosts(labels, self._config.host):
            return container
        if for_start:
            other = labels.get(LABEL_HOST) if labels.get(LABEL_LEASE) else None
            raise ContainerStartError(
                f"A container named {name} exists that belongs to gpubot on {other}; two bots "
                "on one engine need lease ids of their own." if other else
                f"A container named {name} exists that gpubot did not create; remove or rename it."
            )
        log.warning("ignoring container %s: it lacks the label %s=%s", name, LABEL_LEASE, lease_id)
        return None

    def _remove_network_quietly(self, lease_id: int) -> None:
        try:
            docker_network.remove_network(self._client, lease_id, self._config.host)
        except DockerException as exc:  # list_managed's prune retries it
            log.warning("could not remove the network of lease %s: %s", lease_id, explain(exc))

    def _remove_quietly(self, container: Container, *, raise_errors: bool = False) -> None:
        try:
            container.remove(force=True)
        except NotFound:
            pass
        except DockerException as exc:
            if "already in progress" in explain(exc):
                return
            log.error("could not remove container %s: %s", container.name, explain(exc))
            if raise_errors:
                raise


def _ignore(_text: str) -> None:
    return None


def _close_when(stop: threading.Event, stream: Any) -> None:
    stop.wait()
    stream.close()
