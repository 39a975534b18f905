"""``ContainerRuntime`` on a Slurm cluster through slurmrestd: one batch job per lease.

A lease is the job ``gpubot-<lease id>`` with the labels of DESIGN.md §4 as JSON in its
comment (plus ``gpubot.host``, ``gpubot.port``), asking for GRES GPUs, CPUs, memory and a
time limit of the lease plus a grace (Slurm's kill is the backstop; gpubot's expiry comes
first), pinned to the node its GPUs were granted on (``slurm_inventory``). Slurm picks the
GPUs there; the job reports its node and GPUs into its run folder on shared storage
(``slurm_script``), and the lease's Jupyter is reached at that node's address. With a
cluster JWT key the job is submitted as the person's own account (``slurm_auth``), which
owns their workspace. The services cannot tell this engine from Docker's.

Unreachable is never "gone": every read that fails raises ``SlurmUnavailable`` (the
reconciler then skips its checks), and only Slurm's own "invalid job id", a cancelled
job or a finished one that ``stop`` cleared counts as GONE.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.adapters.docker_workspace import (
    prepare_workspace,
    validate_spec,
    workspace_usage,
)
from bot.adapters.jupyter_probe import http_status
from bot.adapters.slurm_auth import ClusterAccounts, TokenMinter
from bot.adapters.slurm_events import watch
from bot.adapters.slurm_rest import SlurmRest
from bot.adapters.slurm_runs import RunFolders, job_user, write_private
from bot.adapters.slurm_script import (
    HASH_FILE,
    JobRequest,
    Placement,
    job_description,
    job_script,
    minutes,
    one_node,
    read_labels,
    read_placement,
)
from bot.adapters.slurm_state import (
    LABEL_ENV,
    LABEL_GPUS,
    LABEL_HOST,
    LABEL_LEASE,
    LABEL_PORT,
    LABEL_USER,
    is_alive,
    job_state,
    lease_of,
    pending_waits,
    state_of,
)
from bot.domain.errors import ContainerStartError, ImageMissing, PortInUse
from bot.domain.lease import container_name
from bot.ports import (
    ContainerHandle,
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    EngineWait,
    EventCallback,
    ManagedContainer,
    ProgressCallback,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlurmRuntimeConfig:
    url: str
    token_file: Path
    user: str  # the service account the token is for; jobs run as this user
    partition: str
    image: str  # the default environment: <env_root>/<image with / and : as _>
    env_root: Path  # unpacked environments on shared storage
    workspace_root: Path  # shared storage, one folder per person
    state_root: Path  # shared storage: one run folder per lease (hash, placement, log)
    host: str = ""  # gpubot.host label: two bots may share one cluster
    gpu_type: str = ""  # GRES model ("a100"); empty: any GPU
    cpus: int = 4
    memory_mb: int = 16384
    time_limit: timedelta = timedelta(days=7)  # a spec without a time limit: the longest lease
    grace: timedelta = timedelta(hours=1)  # Slurm's kill comes this long after gpubot's expiry
    bind_address: str = "0.0.0.0"  # where Jupyter listens on the node
    stop_timeout: float = 30.0
    place_wait: float = 10.0  # how long start waits for Slurm to run the job
    ready_poll_interval: float = 0.5
    event_poll_interval: float = 1.0
    # Jobs as each person's own account (slurm_auth): the cluster's JWT key and the file
    # linking Slack users to logins. Unset: every job runs as ``user``.
    jwt_key: Path | None = None
    accounts_file: Path | None = None


def env_dir(root: Path, image: str) -> Path:
    return root / image.replace("/", "_").replace(":", "_")


class SlurmRuntime:
    def __init__(self, config: SlurmRuntimeConfig, rest: SlurmRest | None = None) -> None:
        self._config = config
        self._accounts = ClusterAccounts(config.accounts_file) if config.accounts_file else None
        self._rest = rest or SlurmRest(config.url, token_file=config.token_file, user=config.user,
                                       minter=TokenMinter(config.jwt_key) if config.jwt_key else None)
        self._stopped: set[int] = set()  # job ids this process cancelled (no death event)
        self._addresses: dict[str, str] = {}
        self._runs = RunFolders(config.state_root)

    # ------------------------------------------------------------------ start
    def start(self, spec: ContainerSpec, *, on_progress: ProgressCallback | None = None) -> ContainerHandle:
        report = on_progress or (lambda _text: None)
        self._validate(spec)
        jobs = self._rest.jobs()
        current = self._current(jobs, spec.lease_id)
        if current is not None and is_alive(current):
            return self._handle(current)
        self._refuse_taken_port(jobs, spec)
        image = spec.image or self._config.image
        env = env_dir(self._config.env_root, image)
        if not (env / "venv" / "bin" / "jupyter").is_file():
            raise ImageMissing(
                f"The environment {image} is not unpacked on the cluster's shared storage.",
                detail=f"{env}/venv/bin/jupyter is missing (deploy/slurm/export_env.sh)")
        login = self._accounts.login(spec.user_id) if self._accounts else None
        uid, gid = job_user(login, person=True) if login else job_user(self._config.user)
        workspace = prepare_workspace(self._config.workspace_root, spec.user_id, uid)
        run = self._runs.fresh(spec.lease_id, uid, gid)
        write_private(run / HASH_FILE, spec.password_hash + "\n", uid, gid)
        labels = {LABEL_LEASE: str(spec.lease_id), LABEL_USER: spec.user_id,
                  LABEL_GPUS: ",".join(spec.gpu_uuids), LABEL_HOST: self._config.host,
                  LABEL_PORT: str(spec.port), LABEL_ENV: spec.environment or ""}
        req = JobRequest(lease_id=spec.lease_id, port=spec.port, gpus=max(1, len(spec.gpu_uuids)),
                         labels=labels, run_dir=run, env_dir=env, workspace=workspace,
                         node=one_node(spec.gpu_uuids))
        limit = (spec.time_limit or self._config.time_limit) + self._config.grace
        report("Submitting the Jupyter job to Slurm")
        try:
            job_id = self._rest.submit(
                job_script(req, bind_address=self._config.bind_address),
                job_description(req, partition=self._config.partition, gpu_type=self._config.gpu_type,
                                cpus=self._config.cpus, memory_mb=self._config.memory_mb,
                                time_limit_minutes=minutes(limit)), as_user=login)
        except ContainerStartError:
            self._runs.remove(spec.lease_id)
            raise
        job_id = self._one_job(spec.lease_id, job_id)
        self._await_placement(job_id, report)
        return ContainerHandle(lease_id=spec.lease_id, container_id=str(job_id),
                               name=container_name(spec.lease_id))

    def _one_job(self, lease_id: int, submitted: int) -> int:
        """Two starts of one lease that raced (a reconciler recovering a start whose owner
        it thought dead) each submitted a job: the oldest live one is the lease's, the
        others are cancelled. Both racers agree on which. Slurm's ``singleton``
        dependency keeps a second one from running even for a moment."""
        alive = sorted(int(j["job_id"]) for j in self._rest.jobs()
                       if self._lease(j) == lease_id and is_alive(j))
        keep = alive[0] if alive else submitted
        for extra in alive[1:]:
            log.warning("lease %s: cancelling duplicate Slurm job %s (keeping %s)", lease_id, extra, keep)
            self._stopped.add(extra)
            self._rest.cancel(extra)
        return keep

    def _await_placement(self, job_id: int, report: ProgressCallback) -> None:
        """Like Docker's start, return once the job runs, when Slurm places it within
        ``place_wait`` (it usually does at once); a job still pending after that stays
        STARTING and ``wait_ready`` keeps waiting."""
        deadline, said = time.monotonic() + self._config.place_wait, ""
        while time.monotonic() < deadline:
            job = self._rest.job(job_id)
            if job is None or job_state(job) not in ("PENDING", "CONFIGURING"):
                return
            reason = str(job.get("state_reason") or "")
            if reason and reason != said and reason != "None":
                report(f"Waiting for Slurm to place the job ({reason})")
                said = reason
            time.sleep(0.2)

    def _validate(self, spec: ContainerSpec) -> None:
        validate_spec(spec)
        if spec.ssh_port is not None:
            raise ContainerStartError("SSH access is not offered on the Slurm engine yet.")

    def _refuse_taken_port(self, jobs: list[dict[str, Any]], spec: ContainerSpec) -> None:
        """Slurm does not hand out TCP ports: gpubot does, and two of its live jobs on one
        port could meet on one node. The engine refuses it here, as Docker would."""
        for job in jobs:
            labels = read_labels(job.get("comment"))
            lease = lease_of(job, labels, self._config.host)
            if lease not in (None, spec.lease_id) and is_alive(job) \
                    and labels.get(LABEL_PORT) == str(spec.port):
                raise PortInUse(
                    f"Port {spec.port} is taken by lease {lease}'s Jupyter job; another port may work.",
                    detail=f"job {job.get('job_id')} ({job.get('name')}) holds port {spec.port}")

    # ------------------------------------------------------------- wait_ready
    def wait_ready(self, handle: ContainerHandle, *, port: int, timeout: timedelta) -> str:
        """Wait (pending in Slurm's queue counts) until Jupyter answers on the job's node;
        that node's address."""
        deadline = time.monotonic() + timeout.total_seconds()
        job_id, last = int(handle.container_id), "not placed yet"  # type: int, int | str
        while True:
            job = self._rest.job(job_id)
            state = state_of(job) if job is not None else ContainerState(ContainerStatus.GONE)
            if state.status is ContainerStatus.GONE:
                raise ContainerStartError(
                    f"The Jupyter job {handle.name} disappeared before it was ready.",
                    detail=f"job {job_id}: {job_state(job) if job else 'unknown to Slurm'}")
            if state.status is ContainerStatus.EXITED:
                why = state.error or f"exit code {state.exit_code}"
                raise ContainerStartError(f"Jupyter stopped before it was ready ({why}).",
                                          detail=self._runs.log_tail(handle.lease_id))
            if state.status is ContainerStatus.RUNNING and job is not None:
                address = self._address(str(job.get('batch_host') or ''))
                last = http_status(f"http://{address}:{port}/login")
                if last == 200:
                    return address
            if time.monotonic() >= deadline:
                raise ContainerStartError(
                    f"Jupyter did not answer within {timeout.total_seconds():.0f} s.",
                    detail=f"job {job_id} {job_state(job) if job else ''}: {last}\n"
                           f"{self._runs.log_tail(handle.lease_id)}")
            time.sleep(self._config.ready_poll_interval)

    # ------------------------------------------------------- stop, poll, list
    def stop(self, lease_id: int) -> None:
        """scancel every live job of the lease, wait until Slurm has ended them (their
        GPUs are free once this returns), then clear the run folder (the hash)."""
        mine = [j for j in self._rest.jobs() if self._lease(j) == lease_id]
        for job in (j for j in mine if is_alive(j)):
            self._stopped.add(int(job["job_id"]))
            self._rest.cancel(int(job["job_id"]))
        deadline = time.monotonic() + self._config.stop_timeout
        while any(is_alive(j) for j in mine) and time.monotonic() < deadline:
            time.sleep(0.2)
            mine = [j for j in self._rest.jobs() if self._lease(j) == lease_id]
        if any(is_alive(j) for j in mine):
            raise ContainerStartError(f"Slurm has not ended the job of lease {lease_id} yet.")
        self._runs.remove(lease_id)

    def poll(self, lease_id: int) -> ContainerState:
        job = self._current(self._rest.jobs(), lease_id)
        return self._state(job) if job is not None else ContainerState(ContainerStatus.GONE)

    def list_managed(self) -> list[ManagedContainer]:
        by_lease: dict[int, list[dict[str, Any]]] = {}
        for job in self._rest.jobs():
            lease = self._lease(job)
            if lease is not None:
                by_lease.setdefault(lease, []).append(job)
        found = []
        for lease, jobs in by_lease.items():
            job = _the_job(jobs)
            state = self._state(job)
            if state.status is ContainerStatus.GONE:
                continue
            labels = read_labels(job.get("comment"))
            found.append(ManagedContainer(
                lease_id=lease, user_id=labels.get(LABEL_USER, ""),
                gpu_uuids=tuple(u for u in labels.get(LABEL_GPUS, "").split(",") if u),
                container_id=str(job["job_id"]), name=str(job.get("name")), state=state))
        return found

    def placement(self, lease_id: int) -> Placement | None:
        """Where the lease's job runs and on which GPUs, as the job reported it."""
        found = read_placement(self._runs.path(lease_id))
        job = self._current(self._rest.jobs(), lease_id)
        return found if job is not None and found and found.job_id == int(job["job_id"]) else None

    def waiting(self) -> dict[int, EngineWait]:
        return pending_waits(self._rest.jobs(), partition=self._config.partition, lease_of=self._lease)

    def set_end(self, lease_id: int, ends_at: datetime) -> None:
        """Move the job's time limit to ``ends_at`` plus the grace, counted from the job's
        start as Slurm counts it. Raising a limit needs an operator account (slurmdbd)."""
        job = self._current(self._rest.jobs(), lease_id)
        if job is None or not is_alive(job):
            raise ContainerStartError(f"Lease {lease_id} has no live Slurm job to extend.")
        started = datetime.fromtimestamp(int(job.get("start_time") or time.time()), UTC)
        limit = ends_at + self._config.grace - started
        self._rest.update(int(job["job_id"]), {"time_limit": minutes(limit)})

    def workspace_usage(self, user_id: str) -> int | None:
        return workspace_usage(self._config.workspace_root, user_id)

    def set_authorized_keys(self, lease_id: int, text: str) -> None:
        raise ContainerStartError("SSH access is not offered on the Slurm engine yet.")

    def watch_events(self, *, on_event: EventCallback, stop: threading.Event) -> None:
        """slurmrestd has no event stream: ``slurm_events.watch`` polls the job list."""
        watch(list_jobs=self._rest.jobs, lease_of=self._lease, state_of=self._state,
              stopped=self._stopped, on_event=on_event, stop=stop,
              interval=self._config.event_poll_interval)

    # ---------------------------------------------------------------- helpers
    def _lease(self, job: Mapping[str, Any]) -> int | None:
        return lease_of(job, read_labels(job.get("comment")), self._config.host)

    def _current(self, jobs: list[dict[str, Any]], lease_id: int) -> dict[str, Any] | None:
        mine = [j for j in jobs if self._lease(j) == lease_id]
        return _the_job(mine) if mine else None

    def _state(self, job: dict[str, Any]) -> ContainerState:
        state = state_of(job)
        if state.status is ContainerStatus.EXITED and not self._runs.path(self._lease(job) or 0).exists():
            return ContainerState(ContainerStatus.GONE)  # ended, and stop cleared it: removed
        return state

    def _handle(self, job: dict[str, Any]) -> ContainerHandle:
        lease = int(self._lease(job) or 0)
        return ContainerHandle(lease_id=lease, container_id=str(job["job_id"]), name=container_name(lease))

    def _address(self, node: str) -> str:
        if node not in self._addresses:
            for n in self._rest.nodes():
                self._addresses[str(n.get("name"))] = str(n.get("address") or n.get("name"))
        return self._addresses.get(node, node)


def _the_job(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """The job that is the lease's: the oldest live one (``_one_job`` keeps that one when
    starts raced), else the newest that ended."""
    alive = [j for j in jobs if is_alive(j)]
    if alive:
        return min(alive, key=lambda j: int(j["job_id"]))
    return max(jobs, key=lambda j: int(j["job_id"]))
