"""``ContainerRuntime`` on a Docker engine: one hardened Jupyter container per lease.

The bot itself creates, starts and, on any failure, removes its containers (never
``containers.run``, never a silent pull). Containers are named ``gpubot-<lease id>`` and
labelled ``gpubot.lease`` / ``gpubot.user`` / ``gpubot.gpus`` (DESIGN.md §4) plus
``gpubot.managed=1`` and ``gpubot.host=<GPUBOT_HOST_NAME>``: a bot lists, reconciles and
watches only the containers of its own host name, so two bots (or a bot and a test
suite) sharing one engine never remove each other's containers. This module and ``bot/adapters/docker_*.py`` are the only ones
that import ``docker``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, NotFound
from docker.models.containers import Container
from docker.types import DeviceRequest

from bot.adapters.docker_messages import create_failure_message, start_failure_message
from bot.adapters.docker_pull import ensure_image
from bot.adapters.docker_ready import http_status, login_url
from bot.adapters.docker_state import (
    LABEL_GPUS,
    LABEL_HOST,
    LABEL_LEASE,
    LABEL_MANAGED,
    LABEL_USER,
    explain,
    has_died,
    is_this_hosts,
    managed_container,
    state_from_inspect,
)
from bot.adapters.docker_workspace import prepare_workspace, validate_gpu_uuids, validate_user_id
from bot.crashpoints import crashpoint
from bot.domain.errors import ContainerStartError
from bot.ports import (
    ContainerHandle,
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    EventCallback,
    ManagedContainer,
    ProgressCallback,
)

log = logging.getLogger(__name__)

JUPYTER_PORT = "8888/tcp"
CONTAINER_USER = "1000:1000"
WORKSPACE_MOUNT = "/workspace"
LOG_LINES = 20


def container_name(lease_id: int) -> str:
    return f"gpubot-{lease_id}"


@dataclass(frozen=True)
class DockerRuntimeConfig:
    image: str
    workspace_root: Path
    bind_address: str  # host address the Jupyter port is published on
    mem_limit: str  # docker notation, e.g. "96g"
    cpus: float
    shm_size: str  # e.g. "8g"
    pids_limit: int
    gpu_request: bool  # False with GPUBOT_FAKE_GPUS: no device request
    pull_missing: bool  # pull a missing image (with progress) instead of failing
    ready_poll_interval: float = 0.25
    stop_timeout: int = 10  # seconds between SIGTERM and SIGKILL
    host: str = ""  # labels our containers; list_managed and events see only these


class DockerRuntime:
    def __init__(
        self, config: DockerRuntimeConfig, client: docker.DockerClient | None = None
    ) -> None:
        self._config = config
        self._client = client if client is not None else docker.from_env()

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
                self._client, self._config.image, pull=self._config.pull_missing, report=report
            )
            workspace = prepare_workspace(self._config.workspace_root, spec.user_id)
            report("Creating the Jupyter container")
            container = self._client.containers.create(**self._create_args(spec, workspace))
            crashpoint("docker.after_create")
        except DockerException as exc:
            detail = explain(exc)
            message = create_failure_message(
                detail, lease_id=spec.lease_id, image=self._config.image
            )
            raise ContainerStartError(message, detail=detail) from exc
        except OSError as exc:  # requests' ConnectionError & co.: no engine to talk to
            raise ContainerStartError(
                "The Docker engine is not reachable; the Jupyter container was not created.",
                detail=str(exc),
            ) from exc
        try:
            report("Starting the Jupyter container")
            container.start()
        except Exception as exc:  # anything after create: leave nothing behind
            self._remove_quietly(container)
            detail = explain(exc)
            message = start_failure_message(
                detail,
                lease_id=spec.lease_id,
                port=spec.port,
                bind_address=self._config.bind_address,
            )
            raise ContainerStartError(message, detail=detail) from exc
        return ContainerHandle(lease_id=spec.lease_id, container_id=container.id, name=name)

    def _validate(self, spec: ContainerSpec) -> None:
        validate_user_id(spec.user_id)
        validate_gpu_uuids(spec.gpu_uuids)
        if not 1 <= spec.port <= 65535:
            raise ContainerStartError(f"Port {spec.port} is not a TCP port.")
        if not spec.password_hash:
            raise ContainerStartError("Refusing to start Jupyter without a password hash.")

    def _create_args(self, spec: ContainerSpec, workspace: Path) -> dict[str, Any]:
        cfg = self._config
        environment = {"JUPYTER_PASSWORD_HASH": spec.password_hash}
        device_requests = None
        if cfg.gpu_request and spec.gpu_uuids:
            device_requests = [
                DeviceRequest(device_ids=list(spec.gpu_uuids), capabilities=[["gpu"]])
            ]
        else:
            # Also on hosts whose default runtime is NVIDIA's: no GPU without a request.
            environment["NVIDIA_VISIBLE_DEVICES"] = "void"
        return {
            "image": cfg.image,
            "name": container_name(spec.lease_id),
            "labels": {
                LABEL_LEASE: str(spec.lease_id),
                LABEL_USER: spec.user_id,
                LABEL_GPUS: ",".join(spec.gpu_uuids),
                LABEL_MANAGED: "1",
                LABEL_HOST: cfg.host,
            },
            "environment": environment,
            "user": CONTAINER_USER,
            "ports": {JUPYTER_PORT: (cfg.bind_address, spec.port)},
            "volumes": {str(workspace): {"bind": WORKSPACE_MOUNT, "mode": "rw"}},
            "mem_limit": cfg.mem_limit,
            "memswap_limit": cfg.mem_limit,
            "nano_cpus": round(cfg.cpus * 1e9),
            "shm_size": cfg.shm_size,
            "pids_limit": cfg.pids_limit,
            "restart_policy": {"Name": "unless-stopped"},
            "security_opt": ["no-new-privileges:true"],
            "cap_drop": ["ALL"],
            "init": True,
            "device_requests": device_requests,
        }

    # ------------------------------------------------------------- wait_ready
    def wait_ready(self, handle: ContainerHandle, *, port: int, timeout: timedelta) -> None:
        """Poll Jupyter's /login until it answers 200. Does not remove the container on
        failure: the caller decides (normally ``stop``)."""
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
                    detail=_logs(container),
                )
            remaining = deadline - time.monotonic()
            status = http_status(url, timeout=max(0.1, min(2.0, remaining)))
            if status == 200:
                return
            last = str(status)
            if time.monotonic() >= deadline:
                raise ContainerStartError(
                    f"Jupyter did not answer within {timeout.total_seconds():.0f} s.",
                    detail=f"GET {url}: {last}\n{_logs(container)}",
                )
            time.sleep(self._config.ready_poll_interval)

    # ---------------------------------------------------------- stop and poll
    def stop(self, lease_id: int) -> None:
        container = self._find(lease_id)
        if container is None:
            return
        try:
            container.stop(timeout=self._config.stop_timeout)
        except NotFound:
            return
        except DockerException as exc:  # e.g. already stopping; removal below decides
            log.warning("stopping %s: %s", container.name, explain(exc))
        self._remove_quietly(container, raise_errors=True)

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
        found = [managed_container(c.id, c.name, c.attrs) for c in ours]
        return [m for m in found if m is not None]

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
        if container.labels.get(LABEL_LEASE) == str(lease_id):
            return container
        if for_start:
            raise ContainerStartError(
                f"A container named {name} exists that gpubot did not create; remove or rename it."
            )
        log.warning("ignoring container %s: it lacks the label %s=%s", name, LABEL_LEASE, lease_id)
        return None

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


def _logs(container: Container) -> str:
    try:
        raw: bytes = container.logs(stdout=True, stderr=True, tail=LOG_LINES)
    except DockerException as exc:
        return f"(logs unavailable: {explain(exc)})"
    return raw.decode("utf-8", errors="replace").strip()
