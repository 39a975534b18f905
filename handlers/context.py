"""What the Slack handlers share: the use cases, the notifier, and the work pool.

Listeners ack at once and hand everything else to ``HandlerContext.submit``, a pool of
our own, so a slow claim (an image pull, Jupyter starting) never holds one of Bolt's
listener threads and delays the next ack.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bot.services.facade import UseCases
from handlers.errors import report
from handlers.notifier import SlackNotifier

log = logging.getLogger(__name__)


@dataclass
class HandlerContext:
    bot: UseCases
    notifier: SlackNotifier
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=16, thread_name_prefix="gpubot-work"))

    def submit(self, work: Callable[[], Any], *, tell: Callable[[str], Any]) -> Future[Any]:
        """Run ``work`` in the pool; a DomainError or a crash is told to the user."""

        def run() -> Any:
            try:
                return work()
            except Exception as error:  # noqa: BLE001 - reported, never swallowed silently
                report(error, tell)
                return None

        return self.pool.submit(run)
