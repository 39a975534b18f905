"""Create an adapter on first use (the CLI's one-shot commands must not load NVML or
reach Docker unless the command needs them)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._target: T | None = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            if self._target is None:
                self._target = self._factory()
        return getattr(self._target, name)
