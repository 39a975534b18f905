"""What the Slack handlers share: the use cases, the notifier, and the work lanes.

Listeners ack at once and hand everything else to ``HandlerContext.submit``, pools of
our own, so a slow claim (an image pull, Jupyter starting) never holds one of Bolt's
listener threads and delays the next ack.

Two lanes, so that slow work cannot starve quick answers: a claim may hold a worker for
minutes, and with one pool sixteen of them left ``/gpu status`` queued behind them
(issue 11.13). The *slow* lane (``SLOW_WORKERS``) takes whatever may start or stop a
container: claims, releases, approvals. The *quick* lane (``QUICK_WORKERS``) takes what
only reads or re-sends: help, status, mine, password, extend, the App Home.
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
SLOW_WORKERS, QUICK_WORKERS = 16, 4
# /gpu sub-commands that may start or stop a container (ending a lease performs its stop
# and may grant a queued request); every other word, unknown ones (help) included, is quick
SLOW_VERBS = frozenset({"claim", "release", "leave", "report"})


def quick_command(text: str | None) -> bool:
    """Whether ``/gpu <text>`` goes to the quick lane."""
    words = (text or "").split()
    return not words or words[0].lower() not in SLOW_VERBS


@dataclass
class HandlerContext:
    bot: UseCases
    notifier: SlackNotifier
    pool: ThreadPoolExecutor = field(  # the slow lane
        default_factory=lambda: ThreadPoolExecutor(max_workers=SLOW_WORKERS,
                                                   thread_name_prefix="gpubot-work"))
    quick_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=QUICK_WORKERS,
                                                   thread_name_prefix="gpubot-quick"))

    def submit(self, work: Callable[[], Any], *, tell: Callable[[str], Any],
               quick: bool = False) -> Future[Any]:
        """Run ``work`` in its lane (``quick``: see the module docstring); a DomainError
        or a crash is told to the user."""

        def run() -> Any:
            try:
                return work()
            except Exception as error:  # noqa: BLE001 - reported, never swallowed silently
                report(error, tell)
                return None

        return (self.quick_pool if quick else self.pool).submit(run)
