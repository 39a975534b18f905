"""``ImageInspector`` on the Docker engine: what an environment's image declares (its
``gpubot.cuda`` label, else NVIDIA's ``CUDA_VERSION``), for ``/gpu envs``. Nothing is
pulled: an image not on the engine says so."""

from __future__ import annotations

from typing import Any

import docker
from docker.errors import ImageNotFound

from bot.adapters.docker_checks import CUDA_LABEL
from bot.ports import ImageInfo


class DockerImages:
    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self._client = client

    def inspect(self, image: str) -> ImageInfo:
        if self._client is None:  # first use: `/gpu envs` may never be asked
            self._client = docker.from_env(timeout=15)
        try:
            found = self._client.images.get(image)
        except ImageNotFound:
            return ImageInfo(cuda=None, present=False)
        config: dict[str, Any] = found.attrs.get("Config") or {}
        labels = config.get("Labels") or {}
        env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
        cuda = (labels.get(CUDA_LABEL) or env.get("CUDA_VERSION") or "").strip()
        return ImageInfo(cuda=cuda or None)
