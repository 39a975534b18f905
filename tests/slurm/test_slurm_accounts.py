"""Jobs as each person's own cluster account (GPUBOT_SLURM_JWT_KEY, GPUBOT_SLURM_ACCOUNTS)
on the real test cluster: the job and the workspace are the person's, code running in
one person's lease cannot read another's workspace, the operator account still extends
and cancels, and a Slack user with no cluster account is refused with what to do."""

from __future__ import annotations

import pwd
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.slurm import SlurmRuntime
from bot.domain.errors import ContainerStartError
from bot.ports import ContainerSpec
from bot.security import hash_jupyter_password
from tests.infra import slurm_engine as eng
from tests.infra.slurm_cluster import ACCOUNT, Cluster
from tests.support.engines import need

pytestmark = pytest.mark.slurm
MEMBERS = {"USLURMALICE": "labalice", "USLURMBOB": "labbob"}
READY = timedelta(seconds=120)


@pytest.fixture
def people(cluster: Cluster, tmp_path: Path) -> Iterator[SlurmRuntime]:
    for login in MEMBERS.values():
        try:
            pwd.getpwnam(login)
        except KeyError:
            need(False, f"no {login} account on this machine", "run tests/infra/setup_slurm.sh")
        cluster.run("sacctmgr", "-i", "add", "user", login, f"account={ACCOUNT}", check=False)
    accounts = tmp_path / "slurm-accounts"
    accounts.write_text("# Slack user  cluster login\n" +
                        "".join(f"{user} {login}\n" for user, login in MEMBERS.items()))
    yield eng.make_runtime(cluster, jwt_key=cluster.root / "etc" / "jwt.key",
                           accounts_file=accounts)


def spec(user: str) -> ContainerSpec:
    return ContainerSpec(lease_id=eng.new_lease(), user_id=user, gpu_uuids=(), port=eng.new_port(),
                         password_hash=hash_jupyter_password("pw"), time_limit=timedelta(hours=1))


def in_job(cluster: Cluster, login: str, job: int, command: str) -> subprocess.CompletedProcess[str]:
    """``command`` as a step of the person's own job: code running inside their lease."""
    return subprocess.run(["runuser", "-u", login, "--", "srun", f"--jobid={job}", "--overlap",
                           "-n1", "bash", "-c", command], env=cluster.env(), capture_output=True,
                          text=True, timeout=60)


def test_each_persons_job_and_workspace_are_theirs_and_closed_to_the_others(
        cluster: Cluster, people: SlurmRuntime) -> None:
    alice, bob = spec("USLURMALICE"), spec("USLURMBOB")
    for s in (alice, bob):
        people.wait_ready(people.start(s), port=s.port, timeout=READY)
    jobs = {s.user_id: eng.job_id_of(cluster, s.lease_id) for s in (alice, bob)}
    for user, login in MEMBERS.items():
        owner = cluster.run("squeue", "-h", "-j", str(jobs[user]), "-o", "%u").strip()
        assert owner == login
        home = eng.workspaces(cluster) / user
        assert home.stat().st_uid == pwd.getpwnam(login).pw_uid
        assert home.stat().st_mode & 0o777 == 0o700
    secret = eng.workspaces(cluster) / "USLURMBOB" / "thesis.ipynb"
    done = in_job(cluster, "labbob", jobs["USLURMBOB"], f"echo draft > {secret} && id -un")
    assert done.returncode == 0 and done.stdout.strip() == "labbob", done.stderr

    attack = in_job(cluster, "labalice", jobs["USLURMALICE"], f"cat {secret}")
    assert attack.returncode != 0 and "Permission denied" in attack.stderr, attack
    assert "draft" not in attack.stdout

    # The operator account moves and ends the people's jobs.
    job = jobs["USLURMALICE"]
    started = datetime.fromtimestamp(int(people._rest.job(job)["start_time"]), UTC)
    people.set_end(alice.lease_id, started + timedelta(hours=5))
    assert "TimeLimit=06:00:00" in cluster.run("scontrol", "show", "job", str(job))
    people.stop(alice.lease_id)
    assert "CANCELLED" in cluster.run("sacct", "-X", "-n", "-j", str(job), "-o", "State")


def test_someone_without_a_cluster_account_is_refused_and_nothing_is_submitted(
        cluster: Cluster, people: SlurmRuntime) -> None:
    stranger = replace(spec("USTRANGER"), user_id="USTRANGER")
    with pytest.raises(ContainerStartError) as refused:
        people.start(stranger)
    assert "not linked to an account on the cluster" in refused.value.message
    assert "GPUBOT_SLURM_ACCOUNTS" in refused.value.message
    assert not cluster.run("squeue", "-h", "-n", f"gpubot-{stranger.lease_id}", "-o", "%i").strip()
