"""Figure 10: ``/gpu claim`` → access DM on the Slurm engine, through the real
``gpubot serve`` (``GPUBOT_ENGINE=slurm``, Socket Mode to the Slack stand-in), next to its
floor: the same job submitted by hand (``sbatch`` of the engine's own job script, as the
service account) until Jupyter's /login answers 200, and the engine alone (the
``SlurmRuntime`` the bot builds from the same settings: ``start`` + ``wait_ready``).

One test cluster (2 nodes × 2 GPUs) serves all three; one job runs at a time, so Slurm
places each at once. The floor's and the engine's jobs carry no lease of the bot's host,
so its reconciler leaves them alone.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.claim_dm import P50_OVER_FLOOR_S, POLL_S, ClaimRun, claim_until_dm
from bench.result import Section, Table, Target
from bench.slurm import TITLES, cluster
from bench.stats import SUMMARY_HEADER, Summary, row
from bot.adapters.jupyter_probe import http_status

FLOOR_USER = "UBENCHFLOOR"
READY_S = 180.0
PHASES = (  # (label, Web API method, text prefix) of the bot's progress messages
    ("progress DM posted", "chat.postMessage", "Starting your environment"),
    ("submitting the job", "chat.update", "Submitting the Jupyter job to Slurm"),
    ("ready (update)", "chat.update", "Ready: your access details"),
    ("access DM", "chat.postMessage", "Your Jupyter on"),
)
SCRIPT = "the job's script runs on the node"  # placement.json's mtime
MARKS = ("progress DM posted", "submitting the job", SCRIPT, "ready (update)", "access DM")


def bot_settings(running: Any) -> dict[str, str]:
    """What ``gpubot serve`` is given on top of bench/serve.py's settings: the engine."""
    from tests.infra.slurm_cluster import ENV_ROOT, GPU_TYPE
    from tests.infra.slurm_engine import IMAGE

    return {"GPUBOT_ENGINE": "slurm", "GPUBOT_SLURM_URL": running.url,
            "GPUBOT_SLURM_TOKEN_FILE": str(running.token_file),
            "GPUBOT_SLURM_USER": running.user, "GPUBOT_SLURM_PARTITION": running.partition,
            "GPUBOT_SLURM_GPU_TYPE": GPU_TYPE, "GPUBOT_SLURM_ENV_ROOT": str(ENV_ROOT),
            "GPUBOT_SLURM_STATE_ROOT": str(running.shared), "GPUBOT_IMAGE": IMAGE,
            "GPUBOT_WORKSPACE_ROOT": str(running.shared / "workspaces"),
            # the longest lease plus the grace within the partition's MaxTime (7 days)
            "GPUBOT_MAX_LEASE": "2d", "GPUBOT_CPUS": "1", "GPUBOT_MEM_LIMIT": "512m"}


def script_ran_at(state_root: Path, lease_id: int) -> float | None:
    """When the lease's job script ran on its node (it writes placement.json first)."""
    from bot.adapters.slurm_runs import RunFolders
    from bot.adapters.slurm_script import PLACEMENT_FILE

    try:
        return (RunFolders(state_root).path(lease_id) / PLACEMENT_FILE).stat().st_mtime
    except OSError:
        return None


def live_jobs(running: Any, name: str) -> list[str]:
    out = running.run("squeue", "-h", "-n", name, "-t", "PD,CF,R,CG", "-o", "%i", check=False)
    return out.split()


def wait_gone(running: Any, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while live_jobs(running, name):
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {name} still in Slurm's queue {timeout:.0f} s later")
        time.sleep(0.1)


# --------------------------------------------------------------------------- floor
@dataclass
class FloorRun:
    total: float
    submit: float  # sbatch returned
    started: float  # sbatch returned → the script's first lines ran (placement.json)
    ready: float  # the script ran → /login 200


class SbatchFloor:
    """The engine's job script for a lease, submitted by hand: ``sbatch`` run as the
    service account (``runuser``) with the options the engine gives slurmrestd (GRES
    GPU, CPUs, memory, time limit, no requeue, working directory and output in the run
    folder, a clean environment), the hash in its 0600 file; then GET /login every 20 ms
    on the node's address until 200, and ``scancel``."""

    def __init__(self, running: Any, ports: range) -> None:
        from bot.adapters.docker_workspace import prepare_workspace
        from bot.adapters.slurm import env_dir
        from bot.security import generate_password, hash_jupyter_password
        from tests.infra.slurm_cluster import ENV_ROOT, USER
        from tests.infra.slurm_engine import IMAGE

        self.running, self.ports, self.count = running, ports, 0
        self.base = running.shared / "bench-floor"
        self.base.mkdir(exist_ok=True)
        shutil.chown(self.base, USER, USER)
        self.user = USER
        self.env = env_dir(ENV_ROOT, IMAGE)
        uid = pwd.getpwnam(USER).pw_uid
        self.workspace = prepare_workspace(running.shared / "workspaces", FLOOR_USER, uid)
        self.hash = hash_jupyter_password(generate_password())  # made once, outside timing

    def run_once(self, node: str) -> FloorRun:
        from bot.adapters.slurm_script import (
            HASH_FILE, OUTPUT_FILE, PLACEMENT_FILE, JobRequest, job_script,
        )
        from tests.infra.slurm_cluster import GPU_TYPE

        self.count += 1
        port = self.ports[self.count % len(self.ports)]
        run = self.base / f"run-{self.count}"
        run.mkdir(mode=0o700)
        (run / HASH_FILE).write_text(self.hash + "\n")
        (run / HASH_FILE).chmod(0o600)
        req = JobRequest(lease_id=0, port=port, gpus=1, labels={}, run_dir=run,
                         env_dir=self.env, workspace=self.workspace)
        (run / "job.sh").write_text(job_script(req, bind_address="0.0.0.0"))
        for path in (run, run / HASH_FILE, run / "job.sh"):
            shutil.chown(path, self.user, self.user)
        name = f"bench-floor-{os.getpid()}-{self.count}"
        argv = ["runuser", "-u", self.user, "--", "env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin",
                "LANG=C.UTF-8", f"SLURM_CONF={self.running.conf}", "sbatch", "--parsable",
                f"--job-name={name}", f"--partition={self.running.partition}", f"--nodelist={node}",
                f"--gpus-per-node={GPU_TYPE}:1", "--cpus-per-task=1", "--mem=512",
                "--time=180", "--no-requeue", f"--chdir={run}",
                f"--output={run / OUTPUT_FILE}", f"--error={run / OUTPUT_FILE}",
                str(run / "job.sh")]
        url = f"http://127.0.0.1:{port}/login"
        t0 = time.perf_counter()
        job = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()
        try:
            t1 = time.perf_counter()
            deadline, t2 = t1 + READY_S, None
            while True:
                if t2 is None and (run / PLACEMENT_FILE).exists():
                    t2 = time.perf_counter()
                if t2 is not None and http_status(url, timeout=1.0) == 200:
                    break
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"floor job {job}: /login never answered 200:\n"
                                       f"{(run / OUTPUT_FILE).read_text(errors='replace')[-2000:]}")
                time.sleep(POLL_S)
            t3 = time.perf_counter()
        finally:
            self.running.run("scancel", job.split(";")[0], check=False)
            wait_gone(self.running, name)
            shutil.rmtree(run, ignore_errors=True)
        return FloorRun(total=t3 - t0, submit=t1 - t0, started=t2 - t1, ready=t3 - t2)


# --------------------------------------------------------------------------- engine
@dataclass
class EngineRun:
    total: float
    start: float  # start() returned (the job submitted and placed)
    script: float | None  # start called → the job's script ran on the node (placement.json)


def engine_once(runtime: Any, state_root: Path, node: str, lease_id: int, port: int,
                password_hash: str) -> EngineRun:
    """The bot's runtime without the bot: ``start`` + ``wait_ready`` of a 2-hour lease on
    a GPU of ``node`` (as the bot grants one), then ``stop``."""
    from datetime import timedelta

    from bot.adapters.slurm_state import slot_uuid
    from bot.ports import ContainerSpec

    spec = ContainerSpec(lease_id=lease_id, user_id=FLOOR_USER, gpu_uuids=(slot_uuid(node, 0),),
                         port=port, password_hash=password_hash, time_limit=timedelta(hours=2))
    t0, wall = time.perf_counter(), time.time()
    try:
        handle = runtime.start(spec)
        t1 = time.perf_counter()
        runtime.wait_ready(handle, port=port, timeout=timedelta(seconds=READY_S))
        t2 = time.perf_counter()
        ran = script_ran_at(state_root, lease_id)
        return EngineRun(total=t2 - t0, start=t1 - t0,
                         script=None if ran is None else ran - wall)
    finally:
        runtime.stop(lease_id)


# --------------------------------------------------------------------------- bot
def claim_once(bot: Any, running: Any, user: str) -> ClaimRun:
    """Figure 1's claim (bench/claim_dm.py) on Slurm: its release waits for the job to
    leave Slurm's queue instead of a container to go; one more mark, when the job's
    script ran on its node."""
    run, _, t0 = claim_until_dm(bot, user, timeout=READY_S, phases=PHASES)
    ran = script_ran_at(running.shared, run.lease_id)
    if ran is not None:
        run.marks[SCRIPT] = ran - t0
    t1 = time.monotonic()
    bot.slack.slash_command(user, "release")  # the only open lease of this user
    wait_gone(running, f"gpubot-{run.lease_id}")
    run.release = time.monotonic() - t1
    return run


# --------------------------------------------------------------------------- figure
def run(*, repeats: int, log: Any = print) -> Section:
    from bench.serve import BENCH_USER_IDS, free_block, launch, standin, stop
    from bot.bootstrap_settings import make_runtime
    from bot.security import generate_password, hash_jupyter_password
    from bot.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="gpubot-bench-slurm-"))
    slack = standin()
    floors: list[FloorRun] = []
    engines: list[EngineRun] = []
    claims: list[ClaimRun] = []
    bot = None
    try:
        with cluster() as running:
            settings = bot_settings(running)
            ports = free_block(10)
            floor = SbatchFloor(running, ports[:5])
            # the bot's own runtime, built from the same settings, under another host label
            runtime = make_runtime(Settings(**{**settings, "GPUBOT_HOST_NAME": "bench-engine"}))
            engine_hash = hash_jupyter_password(generate_password())
            bot = launch(slack, workdir, scoped=False, extra=settings)
            log(f"  gpubot serve (GPUBOT_ENGINE=slurm) is up (pid {bot.pid}, "
                f"{bot.started_s:.1f} s to connect)")
            time.sleep(3)  # its start-up reconcile
            log("  warm-up: one of each (not counted)")
            nodes = running.nodes
            floor.run_once(nodes[0])
            engine_once(runtime, running.shared, nodes[0], 900_000, ports[5], engine_hash)
            claim_once(bot, running, BENCH_USER_IDS[0])
            kinds = ("floor", "engine", "bot")
            for i in range(repeats):
                for what in kinds[i % 3:] + kinds[:i % 3]:  # the order rotates
                    time.sleep(0.5)
                    node = nodes[i % len(nodes)]  # the bot's grants alternate too
                    if what == "floor":
                        floors.append(floor.run_once(node))
                    elif what == "engine":
                        engines.append(engine_once(runtime, running.shared, node, 900_001 + i,
                                                   ports[6 + i % 4], engine_hash))
                    else:
                        user = BENCH_USER_IDS[i % len(BENCH_USER_IDS)]
                        claims.append(claim_once(bot, running, user))
                log(f"  {i + 1:2d}/{repeats}: sbatch floor {floors[-1].total:.3f} s, engine "
                    f"{engines[-1].total:.3f} s, claim→DM {claims[-1].total:.3f} s "
                    f"(lease {claims[-1].lease_id})")
            stop(bot)
            bot = None
    finally:
        if bot is not None:
            log(bot.log_text()[-3000:])
            stop(bot)
        slack.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return section(floors, engines, claims)


def section(floors: list[FloorRun], engines: list[EngineRun], claims: list[ClaimRun]) -> Section:
    f_total, e_total = Summary.of(r.total for r in floors), Summary.of(r.total for r in engines)
    c_total = Summary.of(r.total for r in claims)
    diff = c_total.median - f_total.median
    out = Section("slurm", TITLES["slurm_claim"], method=(
        f"One test cluster (2 nodes × 2 fake GPUs, one job at a time, so Slurm places each "
        f"at once). {c_total.n} claims through the real `gpubot serve` process with "
        "`GPUBOT_ENGINE=slurm` (Socket Mode to the Slack stand-in, SQLite, "
        "its `SlurmInventory`; 1 CPU and 512 MB a job), each `/gpu claim 2h` → access DM → "
        "`/gpu release` → the job out of Slurm's queue, users rotating; the time runs from "
        "just before the stand-in sends the slash command to the stand-in recording the "
        "access DM. Rotating with it, two floors: *sbatch by hand* is the engine's own job "
        "script (`job_script`: placement file, the hash from its 0600 file, JupyterLab from "
        "the image's environment on shared storage) submitted with `sbatch` as the service "
        "account with the options the engine gives slurmrestd (pinned to a node, as the "
        "bot pins a lease's job to the node of its granted GPU; the nodes alternate), then "
        f"`GET /login` every {POLL_S * 1000:.0f} ms until 200; *engine* is the `SlurmRuntime` that "
        "`make_runtime` builds from the bot's settings, `start` + `wait_ready` (what the "
        "bot adds on top of it: the Slack round trips, the grant and the database, its "
        "progress messages). One warm-up of each is not counted. Phase marks come from the "
        "bot's progress messages (stand-in call times) and, for *the job's script runs*, "
        "the time its script wrote placement.json into the run folder. Issue 14 names no "
        "number for this figure: the target is figure 1's, the bot within 0.6 s of its floor."))
    out.tables.append(Table("seconds", ["", *SUMMARY_HEADER], [
        row("floor: sbatch by hand → /login 200", f_total, "{:.3f}"),
        row("engine: SlurmRuntime start + wait_ready", e_total, "{:.3f}"),
        row("bot: /gpu claim → access DM", c_total, "{:.3f}"),
    ]))
    out.tables.append(Table("bot vs floor", ["", "value"], [
        ["difference of medians (bot − sbatch floor)", f"{diff:+.3f} s"],
        ["difference of medians (bot − engine)", f"{c_total.median - e_total.median:+.3f} s"],
        ["difference of medians (engine − sbatch floor)",
         f"{e_total.median - f_total.median:+.3f} s"],
        ["ratio of medians (bot / sbatch floor)",
         f"{c_total.median / f_total.median:.2f}×" if f_total.median else "n/a"],
        ["to the job's script running on its node (medians): bot / engine / sbatch floor",
         " / ".join(f"{Summary.of(v).median:.3f}" for v in (
             [r.marks[SCRIPT] for r in claims if SCRIPT in r.marks],
             [r.script for r in engines if r.script is not None],
             [r.submit + r.started for r in floors])) + " s"],
        ["from there to the access DM (bot) or /login 200 (medians): bot / engine / sbatch floor",
         " / ".join(f"{Summary.of(v).median:.3f}" for v in (
             [r.total - r.marks[SCRIPT] for r in claims if SCRIPT in r.marks],
             [r.total - r.script for r in engines if r.script is not None],
             [r.ready for r in floors])) + " s"],
    ]))
    rows = [row("ack of the claim envelope (ms)", Summary.of(r.ack for r in claims).scaled(1000))]
    prev = "send"
    for label in MARKS:
        spans = [r.marks[label] - (0.0 if prev == "send" else r.marks[prev]) for r in claims
                 if label in r.marks and (prev == "send" or prev in r.marks)]
        rows.append(row(f"{prev} → {label}", Summary.of(spans), "{:.3f}"))
        prev = label
    rows += [row("floor: sbatch", Summary.of(r.submit for r in floors), "{:.3f}"),
             row("floor: sbatch returned → the script runs on the node",
                 Summary.of(r.started for r in floors), "{:.3f}"),
             row("floor: the script runs → /login 200", Summary.of(r.ready for r in floors),
                 "{:.3f}"),
             row("engine: start (submitted, placed)", Summary.of(r.start for r in engines),
                 "{:.3f}"),
             row("engine: start called → the job's script runs on the node",
                 Summary.of(r.script for r in engines if r.script is not None), "{:.3f}"),
             row("engine: the script runs → /login 200",
                 Summary.of(r.total - r.script for r in engines if r.script is not None),
                 "{:.3f}"),
             row("bot: /gpu release → the job out of Slurm's queue",
                 Summary.of(r.release for r in claims), "{:.3f}")]
    out.tables.append(Table("where the time goes (seconds unless noted)",
                            ["phase", *SUMMARY_HEADER], rows))
    out.targets += [
        Target("Slurm claim→DM p50 vs sbatch floor",
               f"median ≤ floor median + {P50_OVER_FLOOR_S} s",
               f"{c_total.median:.3f} s vs {f_total.median:.3f} s ({diff:+.3f} s)",
               diff <= P50_OVER_FLOOR_S),
    ]
    return out
