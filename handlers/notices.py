"""The notifier's approval notices that ``handlers.blocks`` does not have, and the bounded
map it keeps Slack message references in."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from bot.domain.durations import format_duration
from bot.domain.lease import Lease
from handlers import blocks

Message = tuple[str, list[dict[str, Any]]]
K = TypeVar("K")
V = TypeVar("V")


def _what(lease: Lease) -> str:
    return (f"{lease.gpu_count} GPUs" if lease.gpu_count > 1 else "a GPU") + \
        (f" ({lease.gpu_model})" if lease.gpu_model else "")


def nobody_can_approve(lease: Lease, problem: str) -> Message:
    """To the requester, at once, instead of "I'll DM you the decision"."""
    text = (f"Lease {lease.id} needs an admin's approval, but no admin can see the request: "
            f"{problem}. Ask a gpubot admin directly, or release it (`/gpu release "
            f"{lease.id}`) and claim a single GPU for a shorter time, which needs no approval.")
    return text, [blocks.section(f":warning: {text}")]


def withdrawn_request(lease: Lease) -> Message:
    """The admin-channel request after its holder released it: no buttons left."""
    text = (f"<@{lease.user_id}>'s request for {_what(lease)} for "
            f"{format_duration(lease.duration)} (lease {lease.id}) was withdrawn")
    return text, [blocks.section(f":leftwards_arrow_with_hook: {text}.")]


class Bounded(Generic[K, V]):
    """A dict that forgets its least recently written entries beyond ``limit``: the
    notifier's message references must not grow with every lease the process sees (an
    entry whose lease ended without telling the notifier would otherwise stay forever)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[K, V] = OrderedDict()

    def __setitem__(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def pop(self, key: K, default: V | None = None) -> V | None:
        return self._items.pop(key, default)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)
