"""``python -m bot`` is the ``gpubot`` command."""

from bot.cli import main

main()
