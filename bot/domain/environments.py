"""Environments (DESIGN §4.1): the images a lease may run, named by the lab.

``GPUBOT_ENVIRONMENTS`` is ``name=image,name=image``; the first is the default. Unset,
there is one environment, ``default``, running ``GPUBOT_IMAGE``. Pure: no Docker here;
whether this host's driver can run an image is decided from version strings alone
(the same rule ``gpubot doctor`` applies to the configured image).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.errors import DomainError

DEFAULT_NAME = "default"
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}", re.ASCII)  # fits the 64-char column and a word
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}", re.ASCII)


@dataclass(frozen=True)
class Environment:
    name: str
    image: str


def parse_environments(text: str, default_image: str) -> tuple[Environment, ...]:
    """``name=image,…`` → environments, in order (the first is the default). Raises
    ValueError with a sentence naming the bad entry."""
    if not text.strip():
        return (Environment(DEFAULT_NAME, default_image),)
    found: list[Environment] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        name, sep, image = (s.strip() for s in entry.partition("="))
        name = name.lower()
        if not sep or not _NAME.fullmatch(name) or not _IMAGE.fullmatch(image):
            raise ValueError(f"{entry!r} is not name=image (name: a lowercase word of at "
                             f"most 32 letters, digits, - or _; image: a Docker reference)")
        if any(env.name == name for env in found):
            raise ValueError(f"the environment {name!r} is named twice")
        found.append(Environment(name, image))
    if not found:
        raise ValueError("no environment given; expected name=image,name=image")
    return tuple(found)


def choose(environments: Sequence[Environment], name: str | None) -> Environment:
    """The environment called ``name`` (None: the default). An unknown name is refused
    with the list of those offered."""
    if not environments:
        raise DomainError("No environment is configured (GPUBOT_ENVIRONMENTS).")
    if name is None:
        return environments[0]
    for env in environments:
        if env.name == name.lower():
            return env
    names = ", ".join(f"`{env.name}`" for env in environments)
    raise DomainError(f"There is no environment called `{name}`. Choose one of {names} "
                      f"(`/gpu envs` lists them), e.g. `/gpu claim 24h env "
                      f"{environments[0].name}`.")


def _major_minor(text: str) -> tuple[int, int] | None:
    match = re.match(r"^(\d+)\.(\d+)", text.strip())
    return (int(match[1]), int(match[2])) if match else None


def driver_runs(driver_cuda: str | None, needed: str | None) -> bool | None:
    """Whether a driver supporting CUDA ``driver_cuda`` runs an image built for
    ``needed``: None when either is unknown ("none": a CPU-only image runs anywhere)."""
    if needed is not None and needed.strip().lower() == "none":
        return True
    have = _major_minor(driver_cuda or "")
    want = _major_minor(needed or "")
    if have is None or want is None:
        return None
    return have >= want
