"""`gpubot console`: the same bot with the terminal as the chat.

A second listener set and notifier beside the Slack ones, built by the composition root
(``bot.bootstrap.build_console``): ``Screen`` is the terminal (who sits at it, what was
posted), ``ConsoleNotifier`` prints what the services tell people, ``Console`` reads
lines and runs the Slack side's own command and button functions. Messages are the
Block Kit of ``handlers.blocks``, rendered to text by ``render``.
"""

from handlers.console.chat import Console
from handlers.console.notifier import ConsoleNotifier
from handlers.console.screen import Audience, Screen

__all__ = ["Audience", "Console", "ConsoleNotifier", "Screen"]
