"""Reading slurmrestd's job records into the ports' types (helpers of ``slurm.py``).

The mapping, in the Docker adapter's terms (``docker_state.py``):

* PENDING, CONFIGURING, REQUEUED…  -> STARTING (Slurm has not placed or launched it yet)
* RUNNING, SUSPENDED, COMPLETING on a live job -> RUNNING
* CANCELLED -> GONE: ``stop`` (ours) or an admin's ``scancel`` (the ``docker rm -f``)
* FAILED, COMPLETED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, … -> EXITED with the exit code
  (Slurm's raw wait status: 9 is SIGKILL, read as 137 like Docker's) and the reason; a
  lost node says "host lost" so the services can tell the person why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from bot.ports import ContainerState, ContainerStatus, EngineWait

# The same label names the Docker engine uses (DESIGN.md §4), kept in the job's comment;
# not imported from docker_state, which imports the docker package.
LABEL_LEASE = "gpubot.lease"
LABEL_USER = "gpubot.user"
LABEL_GPUS = "gpubot.gpus"
LABEL_HOST = "gpubot.host"
LABEL_ENV = "gpubot.env"
LABEL_PORT = "gpubot.port"

STARTING = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                      "RESIZING", "SIGNALING", "STAGE_OUT"})
RUNNING = frozenset({"RUNNING", "SUSPENDED"})
ENDING = frozenset({"COMPLETING"})  # the job's processes are being killed
_REASONS = {
    "NODE_FAIL": "host lost: the Slurm node {node} stopped answering",
    "BOOT_FAIL": "host lost: the Slurm node {node} failed to boot",
    "TIMEOUT": "Slurm's time limit for the job ran out",
    "DEADLINE": "Slurm's deadline for the job passed",
    "PREEMPTED": "Slurm preempted the job",
    "OUT_OF_MEMORY": "the job ran out of memory",
}


def job_state(job: Mapping[str, Any]) -> str:
    state = job.get("job_state") or ""
    if isinstance(state, list):  # newer APIs give a list of flags
        state = state[0] if state else ""
    return str(state).upper()


def is_alive(job: Mapping[str, Any]) -> bool:
    return job_state(job) in STARTING | RUNNING | ENDING


def exit_code(raw: object) -> int | None:
    """Slurm's raw wait status -> a shell-style exit code (128 + signal)."""
    try:
        status = int(raw)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    signal = status & 0x7F
    return 128 + signal if signal else (status >> 8) & 0xFF


def state_of(job: Mapping[str, Any]) -> ContainerState:
    state = job_state(job)
    if int(job.get("restart_cnt") or 0) > 0:  # requeued after a failure: that run is lost
        return ContainerState(status=ContainerStatus.EXITED,
                              error=_REASONS["NODE_FAIL"].format(node="of the job") + " (Slurm requeued it)")
    if state in STARTING:
        return ContainerState(status=ContainerStatus.STARTING)
    if state in RUNNING or state in ENDING:
        return ContainerState(status=ContainerStatus.RUNNING)
    if state == "CANCELLED":
        return ContainerState(status=ContainerStatus.GONE)
    node = job.get("batch_host") or job.get("nodes") or "?"
    if state in ("NODE_FAIL", "BOOT_FAIL"):  # the exit status of a lost node means nothing
        return ContainerState(status=ContainerStatus.EXITED, error=_REASONS[state].format(node=node))
    code = exit_code(job.get("exit_code"))
    reason = _REASONS.get(state)
    if reason is None and state not in ("COMPLETED", "FAILED"):
        reason = f"Slurm job state {state or 'unknown'}"
    elif state == "FAILED" and not code:  # no exit status to go by: Slurm's own reason
        reason = f"Slurm: {job.get('state_reason') or 'job failed'}"
    return ContainerState(status=ContainerStatus.EXITED, exit_code=code,
                          oom_killed=state == "OUT_OF_MEMORY", error=reason)


# A GPU of a Slurm node, as gpubot leases it (bot/adapters/slurm_inventory.py).
SLOT_PREFIX = "SLURM-"


def slot_uuid(node: str, index: int) -> str:
    return f"{SLOT_PREFIX}{node}/{index}"


def slot_node(uuid: str) -> str | None:
    """The node of a unit this inventory listed; None for any other id."""
    if not uuid.startswith(SLOT_PREFIX) or "/" not in uuid:
        return None
    return uuid[len(SLOT_PREFIX):].rsplit("/", 1)[0] or None


def pending_waits(jobs: Iterable[Mapping[str, Any]], *, partition: str,
                  lease_of: Callable[[Mapping[str, Any]], int | None]) -> dict[int, EngineWait]:
    """Our pending jobs, each with Slurm's reason, its place among every job pending in
    the partition (by priority, then age: the order the scheduler tries them) and the
    backfill scheduler's expected start, when it has made one."""
    pending = sorted((j for j in jobs if job_state(j) == "PENDING" and j.get("partition") == partition),
                     key=lambda j: (-int(j.get("priority") or 0), int(j.get("submit_time") or 0),
                                    int(j.get("job_id") or 0)))
    found = {}
    for place, job in enumerate(pending, 1):
        lease = lease_of(job)
        if lease is None:
            continue
        start, reason = int(job.get("start_time") or 0), str(job.get("state_reason") or "")
        found[lease] = EngineWait(
            reason=reason if reason not in ("", "None") else "not scheduled yet",
            place=place, of=len(pending),
            expected_start=datetime.fromtimestamp(start, UTC) if start > time.time() else None)
    return found


def lease_of(job: Mapping[str, Any], labels: Mapping[str, str], host: str) -> int | None:
    """The lease a job runs, when it is one of this host's: named ``gpubot-<lease>`` and
    labelled with it; no host label counts as this host's (DESIGN.md §4)."""
    lease = labels.get(LABEL_LEASE, "")
    if not lease.isdigit() or job.get("name") != f"gpubot-{lease}":
        return None
    theirs = labels.get(LABEL_HOST) or ""
    if host and theirs and theirs != host:
        return None
    return int(lease)
