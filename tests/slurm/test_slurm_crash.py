"""SIGKILL the real `gpubot serve` on the Slurm engine at each step of a claim, restart
it, and check that reconcile (by job name and labels) leaves the cluster consistent: the
user told (a working lease or a clear failure), no lease stuck starting, at most one job
per lease ever submitted, and no live job of an ended lease."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest

from tests.e2e.conftest import BOB, ServedBot, launch, query, told
from tests.infra import slurm_engine as eng
from tests.infra.slurm_cluster import ENV_ROOT, GPU_TYPE, Cluster

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]
FAST = {"GPUBOT_READY_TIMEOUT": "20s", "GPUBOT_STARTING_GRACE": "1s",
        "GPUBOT_EFFECT_RETRY_AFTER": "2s", "GPUBOT_RECONCILE_SECONDS": "1"}
# Before the job is submitted the engine plays no part (tests/e2e/test_crash_recovery.py)
POINTS = ["claim.after_start", "access.after_commit"]


def slurm_env(cluster: Cluster, state: Path, host: str) -> dict[str, str]:
    return {"GPUBOT_ENGINE": "slurm", "GPUBOT_SLURM_URL": cluster.url,
            "GPUBOT_SLURM_TOKEN_FILE": str(cluster.token_file), "GPUBOT_SLURM_USER": cluster.user,
            "GPUBOT_SLURM_PARTITION": cluster.partition, "GPUBOT_SLURM_GPU_TYPE": GPU_TYPE,
            "GPUBOT_SLURM_ENV_ROOT": str(ENV_ROOT), "GPUBOT_SLURM_STATE_ROOT": str(state),
            "GPUBOT_IMAGE": eng.IMAGE, "GPUBOT_WORKSPACE_ROOT": str(eng.workspaces(cluster)),
            "GPUBOT_HOST_NAME": host, **FAST}


def jobs_of(cluster: Cluster, host: str) -> dict[int, list[tuple[int, str]]]:
    """Lease -> every job (id, state) this bot ever submitted for it, from accounting."""
    out = cluster.run("sacct", "-X", "-n", "-P", "-u", cluster.user, "-o", "JobID,JobName,State,Comment")
    found: dict[int, list[tuple[int, str]]] = {}
    for line in out.splitlines():
        job, name, state, comment = line.split("|", 3)
        try:
            labels = json.loads(comment or "{}")
        except ValueError:
            continue
        if name.startswith("gpubot-") and labels.get("gpubot.host") == host:
            found.setdefault(int(name.removeprefix("gpubot-")), []).append((int(job), state))
    return found


def settled(bot: ServedBot, cluster: Cluster, host: str) -> dict | None:
    transient = query(bot, "select id, status from leases where status = 'starting'")
    live = {r.id for r in query(bot, "select id from leases where status = 'active'")}
    jobs = jobs_of(cluster, host)
    running = {lease for lease, js in jobs.items() if any(s in ("RUNNING", "PENDING") for _, s in js)}
    state = dict(transient=transient, orphans=sorted(running - live), jobs=jobs, outcome=told(bot))
    return state if not transient and not state["orphans"] and state["outcome"] else None


@pytest.mark.parametrize("point", POINTS)
def test_the_bot_killed_mid_claim_is_recovered_by_one_reconcile(
        point: str, cluster: Cluster, slack_standin, tmp_path: Path) -> None:
    host = f"slurm-crash-{eng.new_lease()}"
    state = eng.workspaces(cluster).parent / host
    state.mkdir(mode=0o755)
    shutil.chown(state, cluster.user, cluster.user)
    low, _ = eng.port_block()
    extra = slurm_env(cluster, state, host)
    bot = launch(slack_standin, tmp_path, extra={**extra, "GPUBOT_CRASHPOINT": point}, low=low)
    try:
        slack_standin.slash_command(BOB, "claim 2h")
        assert bot.process.wait(timeout=120) == -signal.SIGKILL, bot.log_text()
    finally:
        if bot.process.poll() is None:
            bot.process.kill()
    restarted = launch(slack_standin, tmp_path, extra=extra, low=low)
    try:
        found = slack_standin.wait_for(lambda: settled(restarted, cluster, host), timeout=120,
                                       message=f"not settled after {point}")
        assert found["outcome"] == "working", restarted.log_text()[-3000:]
        assert all(len(js) == 1 for js in found["jobs"].values()), found["jobs"]  # no duplicate
    finally:
        restarted.process.send_signal(signal.SIGTERM)
        restarted.process.wait(timeout=30)
