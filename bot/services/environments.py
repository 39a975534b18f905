"""Environments (DESIGN §4.1): which image a lease runs, and the `/gpu envs` table.

A claim names an environment (or takes the first, the default); an unknown name is
refused before anything is written. The table says, per environment, the CUDA version
its image declares (label ``gpubot.cuda``) and whether this host's driver can run it:
the rule ``gpubot doctor`` applies (``bot.domain.environments.driver_runs``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.domain.environments import Environment, choose, driver_runs
from bot.domain.errors import ContainerStartError
from bot.ports import ImageInfo
from bot.services.resources import LeaseConfig, Resources

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnvironmentRow:
    name: str
    image: str
    default: bool
    cuda: str | None  # as the image declares it; None: not stated or not known
    runs: bool | None  # this host's driver runs it; None: cannot tell
    note: str  # why, in a few words


def chosen(config: LeaseConfig, name: str | None) -> Environment | None:
    """The environment a claim asks for (raises DomainError naming those offered);
    None where none are configured (a bare LeaseConfig: the runtime's image)."""
    return choose(config.environments, name) if config.environments else None


def image_of(config: LeaseConfig, name: str | None) -> str | None:
    """The image a granted lease starts. An environment dropped from
    GPUBOT_ENVIRONMENTS since the claim fails the start with a clear message."""
    if name is None or not config.environments:
        return None
    for env in config.environments:
        if env.name == name:
            return env.image
    raise ContainerStartError(f"The environment `{name}` is no longer offered; claim again "
                              f"(`/gpu envs` lists the environments).")


def environment_table(res: Resources) -> list[EnvironmentRow]:
    envs = res.config.environments
    try:
        driver_cuda = res.inventory.driver().cuda_version
    except Exception:  # noqa: BLE001 - the table still lists the images
        log.warning("cannot read the driver's CUDA version", exc_info=True)
        driver_cuda = None
    rows = []
    for i, env in enumerate(envs):
        info = _inspect(res, env.image)
        runs = driver_runs(driver_cuda, info.cuda) if info else None
        rows.append(EnvironmentRow(env.name, env.image, default=i == 0,
                                   cuda=info.cuda if info else None, runs=runs,
                                   note=_note(info, runs, driver_cuda)))
    return rows


def _inspect(res: Resources, image: str) -> ImageInfo | None:
    if res.images is None:
        return None
    try:
        return res.images.inspect(image)
    except Exception:  # noqa: BLE001 - an engine hiccup: "cannot tell" for that row
        log.warning("cannot inspect image %s", image, exc_info=True)
        return None


def _note(info: ImageInfo | None, runs: bool | None, driver_cuda: str | None) -> str:
    if info is None:
        return "image not inspected"
    if not info.present:
        return "not on this server yet: pulled at the first claim"
    if info.cuda is None:
        return "the image states no CUDA version"
    if info.cuda.lower() == "none":
        return "CPU only: runs anywhere"
    if driver_cuda is None:
        return "the driver's CUDA version is unknown"
    if runs:
        return f"the driver supports CUDA {driver_cuda}"
    return f"needs CUDA {info.cuda}; the driver supports only {driver_cuda}"
