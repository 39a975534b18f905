"""The batch job of one lease: its description for slurmrestd and its script.

Jupyter runs from the image's own Python environment unpacked on shared storage
(``<env root>/<image>/venv``, deploy/slurm/export_env.sh), never through a container
daemon: a ``docker run`` inside a job escapes the job's process tree and survives
``scancel``, while a venv process is the job's own child, so Slurm's signals and
proctrack end it. The job script

* writes ``placement.json`` into the lease's run folder (shared storage): the node, the
  GPU indices Slurm granted (``SLURM_JOB_GPUS``) and, where nvidia-smi exists, their UUIDs;
* reads the password hash from the 0600 file the bot wrote there (never argv or env);
* traps TERM/INT, stops Jupyter and waits for it, so nothing outlives the job.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.adapters.slurm_state import slot_node
from bot.domain.lease import container_name

HASH_FILE = "password-hash"
PLACEMENT_FILE = "placement.json"
OUTPUT_FILE = "job.log"

_SCRIPT = """#!/bin/bash
# gpubot lease {lease}: JupyterLab from {env}
set -u
umask 077
run={run}
env_dir={env}
jupyter=
stop_jupyter() {{
    trap '' TERM INT
    if [ -n "$jupyter" ]; then kill -TERM "$jupyter" 2>/dev/null; wait "$jupyter"; fi
    exit 143
}}
trap stop_jupyter TERM INT

# A lost node must fail the lease, not restart it elsewhere unannounced: slurmrestd
# 22.05 ignores "requeue": false at submission, so the job clears the flag itself.
command -v scontrol >/dev/null 2>&1 && scontrol update JobId="$SLURM_JOB_ID" Requeue=0 >/dev/null 2>&1

uuids=
if command -v nvidia-smi >/dev/null 2>&1 && [ -n "${{CUDA_VISIBLE_DEVICES:-}}" ]; then
    uuids=$(nvidia-smi --query-gpu=uuid --format=csv,noheader -i "$CUDA_VISIBLE_DEVICES" | paste -sd, -)
fi
printf '{{"job": "%s", "node": "%s", "gpus": "%s", "uuids": "%s"}}\\n' \\
    "$SLURM_JOB_ID" "$SLURMD_NODENAME" "${{SLURM_JOB_GPUS:-}}" "$uuids" >"$run/placement.tmp"
mv -f "$run/placement.tmp" "$run/{placement}"

export JUPYTER_PASSWORD_HASH_FILE="$run/{hash_file}"
export HOME={workspace} JUPYTER_RUNTIME_DIR="$run/runtime"
cd {workspace}
export PATH="$env_dir/venv/bin:$PATH"
"$env_dir/venv/bin/python" -m jupyterlab \\
    --config="$env_dir/jupyter_server_config.py" \\
    --ServerApp.ip={bind} \\
    --ServerApp.port={port} \\
    --ServerApp.port_retries=0 \\
    --ServerApp.root_dir={workspace} \\
    --ServerApp.open_browser=False \\
    --ServerApp.quit_button=False \\
    --IdentityProvider.token= \\
    --PasswordIdentityProvider.allow_password_change=False &
jupyter=$!
wait "$jupyter"
exit $?
"""


@dataclass(frozen=True)
class JobRequest:
    lease_id: int
    port: int
    gpus: int
    labels: dict[str, str]
    run_dir: Path
    env_dir: Path
    workspace: Path
    node: str | None = None  # the node gpubot granted GPUs on; None: Slurm chooses


def job_script(req: JobRequest, *, bind_address: str) -> str:
    q = shlex.quote
    return _SCRIPT.format(lease=req.lease_id, run=q(str(req.run_dir)), env=q(str(req.env_dir)),
                          placement=PLACEMENT_FILE, hash_file=HASH_FILE, port=req.port,
                          workspace=q(str(req.workspace)), bind=q(bind_address))


def job_description(req: JobRequest, *, partition: str, gpu_type: str, cpus: int,
                    memory_mb: int, time_limit_minutes: int) -> dict[str, Any]:
    """slurmrestd v0.0.38 ``job`` object. Memory is always set: without it Slurm gives a
    job the whole node's memory, and one lease would block every other on that node."""
    gres = f"{gpu_type}:{req.gpus}" if gpu_type else str(req.gpus)
    return {
        "name": container_name(req.lease_id),
        "comment": json.dumps(req.labels, separators=(",", ":"), sort_keys=True),
        "partition": partition,
        "gpus_per_node": gres,
        "cpus_per_task": cpus,
        "memory_per_node": memory_mb,
        "time_limit": time_limit_minutes,
        "requeue": False,  # ignored by slurmrestd 22.05: the script clears it (above)
        "dependency": "singleton",  # one running job of this name (lease) at a time
        "current_working_directory": str(req.run_dir),
        "standard_output": str(req.run_dir / OUTPUT_FILE),
        "standard_error": str(req.run_dir / OUTPUT_FILE),
        "environment": {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
        **({"nodelist": req.node} if req.node else {}),  # v0.0.38 disables required_nodes
    }


def minutes(limit: timedelta) -> int:
    """Slurm's limits are whole minutes: round up, so the kill never comes early."""
    return max(1, -int(-limit.total_seconds() // 60))


def one_node(gpu_uuids: tuple[str, ...]) -> str | None:
    """The node gpubot granted the lease's GPUs on (``slurm_inventory``), if it did."""
    nodes = {slot_node(u) for u in gpu_uuids}
    return nodes.pop() if len(nodes) == 1 else None


def read_labels(comment: str | None) -> dict[str, str]:
    """The labels kept in a job's comment; {} for a comment that is not ours."""
    try:
        data = json.loads(comment or "")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items()}


@dataclass(frozen=True)
class Placement:
    """Where the job runs, as the job itself reported it."""

    job_id: int
    node: str
    gpu_indices: tuple[int, ...]
    gpu_uuids: tuple[str, ...]  # empty on nodes without nvidia-smi (fake GPUs)


def read_placement(run_dir: Path) -> Placement | None:
    try:
        data = json.loads((run_dir / PLACEMENT_FILE).read_text())
        indices = tuple(int(i) for i in str(data.get("gpus") or "").split(",") if i.strip())
        uuids = tuple(u.strip() for u in str(data.get("uuids") or "").split(",") if u.strip())
        return Placement(job_id=int(data["job"]), node=str(data["node"]),
                         gpu_indices=indices, gpu_uuids=uuids)
    except (OSError, ValueError, KeyError, TypeError):
        return None
