"""Slack's per-channel posting limit, as the Web API enforces it.

Slack lets an app post about one message per second to a channel, "with short bursts
allowed"; past that a call is answered with HTTP 429, ``Retry-After: <seconds>`` and
``{"ok": false, "error": "ratelimited"}``, and nothing is posted. The stand-in models this
as a sliding window of ``burst`` posts per ``window_s`` seconds per channel argument (a
user id, a DM channel id or a channel id; the bot always names a DM by user id). Off by
default so that ordinary tests run at full speed; ``StandInConfig(post_limit=...)`` turns
it on. Wall time, not ``Store.now()``: the client really sleeps ``Retry-After``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque


class PostLimiter:
    def __init__(self, burst: int, window_s: float) -> None:
        self.burst, self.window_s = burst, window_s
        self._posts: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, channel: str) -> int | None:
        """None if a post to ``channel`` may go now (and count it), else the whole seconds
        to wait, as Slack's ``Retry-After`` header gives them."""
        now = time.monotonic()
        with self._lock:
            posts = self._posts.setdefault(channel, deque())
            while posts and posts[0] <= now - self.window_s:
                posts.popleft()
            if len(posts) < self.burst:
                posts.append(now)
                return None
            return max(1, math.ceil(posts[0] + self.window_s - now))
