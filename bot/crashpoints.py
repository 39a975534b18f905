"""Named points where the crash-recovery tests kill the bot with SIGKILL.

``GPUBOT_CRASHPOINT=<name>`` makes the process kill itself, uncatchably, the moment it
reaches that point (e.g. ``claim.after_start``), as a power cut or an OOM kill would.
Unset (always, outside those tests), ``crashpoint`` is a dictionary lookup and nothing
else. Points: claim.after_lease_row, docker.after_create, claim.after_start,
claim.before_dm, expire.after_commit.
"""

from __future__ import annotations

import os
import signal

_ARMED = os.environ.get("GPUBOT_CRASHPOINT", "")


def crashpoint(name: str) -> None:
    if _ARMED and name == _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
