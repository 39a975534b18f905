"""Making sure the Jupyter image is on the engine: fail clearly, or pull it while
telling people how far the pull is (helpers of ``bot.adapters.docker``).

Docker reports per layer (``{"id": layer, "status": "Downloading", "progressDetail":
{"current": n, "total": m}}``, then "Download complete" / "Pull complete" / "Already
exists"), and an ``{"error": ...}`` event on failure. ``PullProgress`` sums the bytes of
every layer whose size is known and reports the overall percentage each time it crosses
another ``step`` percent; it never goes backwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from bot.adapters.docker_state import explain
from bot.domain.errors import ImageMissing
from bot.ports import ProgressCallback


def ensure_image(
    client: docker.DockerClient, image: str, *, pull: bool, report: ProgressCallback
) -> None:
    """Return when ``image`` is on the engine; pull it first when ``pull`` (never
    silently: progress goes to ``report``); else raise ``ImageMissing``."""
    try:
        client.images.get(image)
        return
    except ImageNotFound:
        pass
    except APIError as exc:  # e.g. 400: not a valid image reference
        raise ImageMissing(
            f"Docker cannot use the image name {image} (GPUBOT_IMAGE).", detail=explain(exc)
        ) from exc
    if not pull:
        raise ImageMissing(
            f"The Jupyter image {image} is not on this host. Build it (image/README.md) or "
            f"`docker pull {image}`, or let the bot pull missing images."
        )
    report(f"Pulling image {image}")
    progress = PullProgress(image, report)
    try:
        for event in client.api.pull(image, stream=True, decode=True):
            progress.feed(event)
    except DockerException as exc:
        raise ImageMissing(
            f"Could not pull the Jupyter image {image}.", detail=explain(exc)
        ) from exc
    if progress.error is not None:
        raise ImageMissing(f"Could not pull the Jupyter image {image}.", detail=progress.error)
    progress.finish()
    try:
        client.images.get(image)
    except ImageNotFound as exc:
        raise ImageMissing(
            f"Pulling {image} ended without the image.", detail=explain(exc)
        ) from exc


_DONE = frozenset({"Download complete", "Pull complete", "Already exists"})


@dataclass
class _Layer:
    current: int = 0
    total: int | None = None
    done: bool = False


@dataclass
class PullProgress:
    image: str
    report: ProgressCallback | None = None
    step: int = 10
    error: str | None = None
    percent: int = 0
    _layers: dict[str, _Layer] = field(default_factory=dict)
    _reported: int = -100  # nothing reported yet: the first sized layer reports 0 %

    def feed(self, event: Mapping[str, Any]) -> None:
        if "error" in event:
            detail = event.get("errorDetail") or {}
            self.error = str(detail.get("message") or event["error"])
            return
        layer_id, status = event.get("id"), str(event.get("status", ""))
        if not layer_id or not _is_layer_status(status):
            return
        layer = self._layers.setdefault(str(layer_id), _Layer())
        detail = event.get("progressDetail") or {}
        if status == "Downloading" and detail.get("total"):
            layer.total = int(detail["total"])
            layer.current = int(detail.get("current") or 0)
        elif status in _DONE:
            layer.done = True
        self._update()

    def finish(self) -> None:
        """The pull ended without an error: report 100 % once."""
        self.percent = 100
        self._emit()

    def _update(self) -> None:
        sized = [layer for layer in self._layers.values() if layer.total]
        if not sized:
            return
        total = sum(layer.total or 0 for layer in sized)
        current = sum(
            (layer.total or 0) if layer.done else min(layer.current, layer.total or 0)
            for layer in sized
        )
        self.percent = max(self.percent, min(99, current * 100 // total))
        if self.percent >= self._reported + self.step:
            self._emit()

    def _emit(self) -> None:
        if self.percent == self._reported:
            return
        self._reported = self.percent
        if self.report is not None:
            self.report(f"Pulling image {self.image}: {self.percent}%")


def _is_layer_status(status: str) -> bool:
    return status in _DONE or status in {
        "Pulling fs layer",
        "Waiting",
        "Downloading",
        "Verifying Checksum",
        "Extracting",
    }
