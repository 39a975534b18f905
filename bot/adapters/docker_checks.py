"""Docker probes for ``gpubot doctor``: engine version, the image's facts, and whether
dockerd can hand a container a GPU. Each returns plain values; ``bot.doctor`` judges."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound
from docker.types import DeviceRequest

CUDA_LABEL = "gpubot.cuda"
PROBE_LABEL = "gpubot.doctor-probe"  # not gpubot.lease: reconcile leaves it alone
_MAJOR_MINOR = re.compile(r"^(\d+)\.(\d+)")


class DockerUnavailable(Exception):
    """The engine cannot be reached; the message says why."""


def connect(base_url: str | None = None, *, timeout: int = 15) -> docker.DockerClient:
    """A client for ``base_url``, or for DOCKER_HOST / the default socket."""
    try:
        client = (docker.DockerClient(base_url=base_url, timeout=timeout) if base_url
                  else docker.from_env(timeout=timeout))
        client.ping()
    except DockerException as exc:
        raise DockerUnavailable(str(exc).splitlines()[0]) from exc
    return client


def engine_version(client: docker.DockerClient) -> str:
    info = client.version()
    return f"{info.get('Version', '?')} (API {info.get('ApiVersion', '?')})"


@dataclass(frozen=True)
class ImageFacts:
    image_id: str
    size_bytes: int
    cuda: str | None  # "major.minor" the image needs, when it says so
    cuda_source: str | None  # where that came from, for people


def image_facts(client: docker.DockerClient, image: str) -> ImageFacts | None:
    """The local image's facts, or None when it is not present (nothing is pulled).
    Its CUDA version comes from the ``gpubot.cuda`` label, else from ``CUDA_VERSION`` in
    its environment (set by NVIDIA's CUDA base images)."""
    try:
        found = client.images.get(image)
    except ImageNotFound:
        return None
    config: dict[str, Any] = found.attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
    cuda, source = None, None
    for value, where in ((labels.get(CUDA_LABEL), f"label {CUDA_LABEL}"),
                         (env.get("CUDA_VERSION"), "env CUDA_VERSION")):
        match = _MAJOR_MINOR.match(value or "")
        if match:
            cuda, source = f"{match[1]}.{match[2]}", where
            break
    return ImageFacts(image_id=found.short_id, size_bytes=int(found.attrs.get("Size") or 0),
                      cuda=cuda, cuda_source=source)


@dataclass(frozen=True)
class ProbeOutcome:
    ok: bool
    stage: str  # "create", "start", "run" or "done"
    detail: str  # the engine's own words when it failed


def gpu_request_probe(client: docker.DockerClient, image: str, *, timeout_s: int = 60) -> ProbeOutcome:
    """Create and start a throw-away container of ``image`` running ``true`` with a GPU
    device request (count 1, capability ``gpu``), then remove it.

    dockerd 20.10 accepts such a container at *create* and refuses it at *start* with
    ``could not select device driver "" with capabilities: [[gpu]]`` when no NVIDIA
    Container Toolkit is installed, so both steps are needed; the error is caught at
    either step, for engines that check earlier.
    """
    container = None
    stage = "create"
    try:
        container = client.containers.create(
            image, entrypoint=["true"], command=[], name=f"gpubot-doctor-{uuid.uuid4().hex[:12]}",
            labels={PROBE_LABEL: "1"}, network_mode="none",
            device_requests=[DeviceRequest(count=1, capabilities=[["gpu"]])])
        stage = "start"
        container.start()
        stage = "run"
        status = container.wait(timeout=timeout_s)
        code = int(status.get("StatusCode", -1))
        if code != 0:
            logs = container.logs(tail=5).decode(errors="replace").strip()
            return ProbeOutcome(False, stage, f"`true` exited with {code}: {logs}")
        return ProbeOutcome(True, "done", "a container with a GPU device request started")
    except APIError as exc:
        return ProbeOutcome(False, stage, str(exc.explanation or exc))
    except DockerException as exc:
        return ProbeOutcome(False, stage, str(exc))
    except Exception as exc:  # noqa: BLE001 - a wait timeout surfaces as a requests error
        return ProbeOutcome(False, stage, f"{type(exc).__name__}: {exc}")
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except DockerException:
                pass  # the label lets an admin find a leftover: docker ps -af label=...


def live_restore(client: docker.DockerClient) -> bool:
    """Whether dockerd keeps containers running while it restarts (``live-restore``)."""
    return bool(client.info().get("LiveRestoreEnabled"))


def storage_driver(client: docker.DockerClient) -> str:
    """``overlay2 on extfs``: the storage driver and its backing file system."""
    info = client.info()
    status = dict((pair[0], pair[1]) for pair in info.get("DriverStatus") or [] if len(pair) == 2)
    backing = status.get("Backing Filesystem")
    return f"{info.get('Driver', '?')}" + (f" on {backing}" if backing else "")


def storage_size_probe(client: docker.DockerClient, image: str, size: str) -> ProbeOutcome:
    """Create (never start) a container of ``image`` whose writable layer is bounded to
    ``size``, then remove it: dockerd refuses at create when its driver cannot bound it
    (overlay2 needs xfs with pquota; btrfs and zfs can)."""
    try:
        container = client.containers.create(
            image, entrypoint=["true"], command=[], labels={PROBE_LABEL: "1"},
            name=f"gpubot-doctor-{uuid.uuid4().hex[:12]}", network_mode="none",
            storage_opt={"size": size})
    except APIError as exc:
        return ProbeOutcome(False, "create", str(exc.explanation or exc))
    except DockerException as exc:
        return ProbeOutcome(False, "create", str(exc))
    try:
        container.remove(force=True)
    except DockerException:
        pass
    return ProbeOutcome(True, "done", f"a container with a {size} writable layer was created")
