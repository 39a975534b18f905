"""What the engine says about a lease's container, and how a death is put in words."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class ContainerStatus(str, Enum):
    RUNNING = "running"
    EXITED = "exited"
    GONE = "gone"  # no such container (the engine answered 404)
    STARTING = "starting"  # created, not yet running


@dataclass(frozen=True)
class ContainerState:
    status: ContainerStatus
    exit_code: int | None = None
    oom_killed: bool = False
    error: str | None = None

    @property
    def dead(self) -> bool:
        return self.status in (ContainerStatus.EXITED, ContainerStatus.GONE)

    def to_json(self) -> str:
        return json.dumps({"status": self.status.value, "exit_code": self.exit_code,
                           "oom_killed": self.oom_killed, "error": self.error})

    @classmethod
    def from_json(cls, text: str | None) -> ContainerState:
        """The state kept in an intent row; anything unreadable is GONE."""
        try:
            data = json.loads(text or "")
            return cls(ContainerStatus(data["status"]), exit_code=data.get("exit_code"),
                       oom_killed=bool(data.get("oom_killed")), error=data.get("error"))
        except (ValueError, KeyError, TypeError):
            return cls(ContainerStatus.GONE)


@dataclass(frozen=True)
class EngineWait:
    """A lease whose start waits in the engine's own queue (a pending Slurm job)."""

    reason: str  # the engine's word for why ("Resources", "Priority")
    place: int | None = None  # 1-based, among the jobs pending in its partition
    of: int | None = None
    expected_start: datetime | None = None  # the engine's estimate, if it made one


def what_happened(state: ContainerState) -> str:
    """The one sentence fragment for a container that died: "ran out of memory (exit
    code 137)", "was removed outside gpubot", "stopped unexpectedly (exit code 1)"."""
    code = f" (exit code {state.exit_code})" if state.exit_code is not None else ""
    if state.oom_killed:
        return f"ran out of memory and was killed{code}"
    if state.status is ContainerStatus.GONE:
        return "was removed outside gpubot"
    return f"stopped unexpectedly{code}" + (f": {state.error}" if state.error else "")


def death_reason(state: ContainerState) -> str:
    """A running lease's container died: the lease's ``failure_reason``."""
    return (f"Your Jupyter container {what_happened(state)}. Your files are kept; claim "
            f"again with /gpu claim.")


def start_died_reason(state: ContainerState) -> str:
    """The container died while the lease was still starting."""
    return (f"Your Jupyter container {what_happened(state)} while it was starting. The GPU "
            f"is free again; try /gpu claim again, and tell an admin if it keeps happening.")
