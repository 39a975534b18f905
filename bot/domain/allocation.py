"""Which GPUs a claim may take, from a live inventory snapshot. Pure and deterministic.

A GPU is a candidate when it is healthy, held by no live lease, runs no compute process
and uses at most ``busy_memory_bytes``. When the driver cannot list its processes, the
memory threshold alone decides; with neither known, nothing shows the GPU idle, so it is
not given out. Candidates are ordered least recently leased first (never-leased first),
then by index, so wear and heat spread over the cards. A multi-GPU claim takes all its
GPUs from one host. The database, not this function, has the last word: the grant
inserts allocation rows whose keys refuse a GPU held twice.

A requested model matches whole tokens of a GPU's name, case-insensitive: "NVIDIA H100
80GB HBM3" is nvidia/h100/80gb/hbm3, so `h100` matches it and `h` or `100` do not (a
substring test let `h` match every "NVIDIA ..." card and `/gpu claim h` lease one).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime

from bot.domain.durations import shown
from bot.domain.errors import DomainError
from bot.domain.gpus import GpuInfo

_NEVER = datetime.min
_SPLIT = re.compile(r"[^a-z0-9]+")
_SIZE = re.compile(r"[0-9]+(?:gb|g|mb)")  # "80gb", "5gb": memory, not a model
_BRANDS = frozenset({"nvidia", "geforce", "tesla", "quadro", "rtx", "gtx", "amd", "mig"})


class UnknownModel(DomainError):
    """No GPU on offer is of the requested model: not a reason to wait in the queue."""


def is_idle(gpu: GpuInfo, *, busy_memory_bytes: int) -> bool:
    if not gpu.healthy or gpu.processes:
        return False
    used = gpu.memory_used_bytes
    if used is None:
        return gpu.processes_known
    return used <= busy_memory_bytes


def name_tokens(name: str) -> list[str]:
    return [t for t in _SPLIT.split(name.lower()) if t]


def matches_model(gpu: GpuInfo, model: str | None) -> bool:
    """``model``'s tokens (``a100``, ``rtx-4090``) all appear among the name's tokens or
    two neighbours written together (``rtx4090``); no model means any GPU."""
    if not model:
        return True
    wanted, have = name_tokens(model), name_tokens(gpu.name)
    words = set(have) | {a + b for a, b in zip(have, have[1:])}
    return bool(wanted) and set(wanted) <= words


def model_of(name: str) -> str:
    """The short word people type for a GPU name: "NVIDIA H100 80GB HBM3" → ``h100``,
    "NVIDIA A100-SXM4-80GB" → ``a100``, "NVIDIA GeForce RTX 4090" → ``rtx-4090``."""
    tokens = name_tokens(name)
    for i, token in enumerate(tokens):
        if _SIZE.fullmatch(token) or not any(c.isdigit() for c in token):
            continue
        if token.isdigit():  # "RTX 4090": the number alone is no model name
            return f"{tokens[i - 1]}-{token}" if i else token
        return token
    named = [t for t in tokens if t not in _BRANDS]
    return (named or tokens or ["gpu"])[0]


def models_on_offer(gpus: Iterable[GpuInfo]) -> list[str]:
    """The distinct models of ``gpus``, sorted: what `/gpu claim 24h <model>` accepts."""
    return sorted({model_of(g.name) for g in gpus})


def is_known_model(gpus: Iterable[GpuInfo], model: str | None) -> bool:
    return not model or any(matches_model(g, model) for g in gpus)


def require_known_model(gpus: Sequence[GpuInfo], model: str | None) -> None:
    """Refuse a model no GPU on offer has (healthy or not, free or not), naming those
    that are; checked before a claim is queued or sent for approval."""
    if is_known_model(gpus, model):
        return
    offer = models_on_offer(gpus)
    listed = ", ".join(f"`{m}`" for m in offer)
    raise UnknownModel(
        f"There is no `{shown(model or '', 32)}` GPU here; "
        + (f"the models on offer: {listed}, e.g. `/gpu claim 24h {offer[0]}`."
           if offer else "no GPU is on offer right now.")
        + " Leave the model out for any free GPU.")


def candidates(
    gpus: Sequence[GpuInfo],
    *,
    taken: Collection[str],
    busy_memory_bytes: int,
    model: str | None = None,
    last_leased: Mapping[str, datetime] | None = None,
) -> list[GpuInfo]:
    last = last_leased or {}
    free = [g for g in gpus if g.uuid not in taken and matches_model(g, model)
            and is_idle(g, busy_memory_bytes=busy_memory_bytes)]
    return sorted(free, key=lambda g: (_naive(last.get(g.uuid)), g.host, g.index))


def choose(
    gpus: Sequence[GpuInfo],
    *,
    count: int,
    taken: Collection[str],
    busy_memory_bytes: int,
    model: str | None = None,
    last_leased: Mapping[str, datetime] | None = None,
) -> list[GpuInfo] | None:
    """The GPUs to grant, all on one host, or None when no host has ``count`` free."""
    by_host: dict[str, list[GpuInfo]] = {}
    for gpu in candidates(gpus, taken=taken, busy_memory_bytes=busy_memory_bytes,
                          model=model, last_leased=last_leased):
        by_host.setdefault(gpu.host, []).append(gpu)
        if len(by_host[gpu.host]) == count:
            return by_host[gpu.host]
    return None


def busy_outside_leases(gpus: Sequence[GpuInfo], *, taken: Collection[str]) -> list[GpuInfo]:
    """GPUs running compute processes while no lease holds them: someone is using the
    card outside the bot. They are never given out and should be reported."""
    return [g for g in gpus if g.processes and g.uuid not in taken]


def _naive(moment: datetime | None) -> datetime:
    return _NEVER if moment is None else moment.replace(tzinfo=None)
