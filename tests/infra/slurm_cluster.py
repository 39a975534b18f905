"""A real two-node Slurm 22.05 cluster on this one machine, for the Slurm engine's tests.

``start_cluster`` writes slurm.conf, gres.conf and slurmdbd.conf into a fresh directory,
starts slurmdbd (on MariaDB, its own database), slurmctld, one ``slurmd -N`` per node (own
Port=, NodeAddr=127.0.0.1) and slurmrestd (JWT), and waits until ``sinfo`` shows the
nodes idle; ``stop`` cancels every job and stops the daemons by PID. Fake GPUs are
character device files (major 195, like /dev/nvidiaN): Slurm only stats them, and takes
the GPU index from the digit in the name. tests/infra/setup_slurm.sh installs the parts.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

USER, ACCOUNT, PARTITION, GPU_TYPE = "gpubot", "lab", "gpu", "a100"
NODES, GPUS_PER_NODE = ("gn01", "gn02"), 2
ENV_ROOT = Path(os.environ.get("GPUBOT_TEST_SLURM_ENVS", "/var/lib/gpubot-slurm/envs"))
SLURMDBD_DB = "127.0.0.1"


def missing_parts() -> str | None:
    """Why no cluster can start here, or None."""
    for tool in ("slurmctld", "slurmd", "slurmdbd", "slurmrestd", "sinfo", "munge", "mysql"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (run tests/infra/setup_slurm.sh as root)"
    if os.geteuid() != 0:
        return "the test cluster's daemons run as root"
    try:
        subprocess.run(["id", USER], check=True, capture_output=True)
        subprocess.run("munge -n | unmunge", shell=True, check=True, capture_output=True)
    except subprocess.CalledProcessError:
        return "no gpubot user or munged not answering (run tests/infra/setup_slurm.sh)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    root: Path
    name: str
    url: str
    token_file: Path
    node_ports: dict[str, int]
    database: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    user: str = USER
    partition: str = PARTITION
    nodes: tuple[str, ...] = NODES
    gpus_per_node: int = GPUS_PER_NODE

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def shared(self) -> Path:
        """The "shared filesystem" of the cluster: runs and workspaces live here."""
        return self.root / "shared"

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, check: bool = True) -> str:
        done = subprocess.run(argv, env=self.env(), capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def node_states(self) -> dict[str, str]:
        out = self.run("sinfo", "-h", "-N", "-o", "%N %t", check=False)
        return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)

    def wait_nodes(self, state: str = "idle", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = self.node_states()
            if all(states.get(n, "").rstrip("*~#") == state for n in self.nodes):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"nodes not {state} after {timeout}s: {states}\n{self.logs()}")
            time.sleep(0.5)

    def start_node(self, node: str) -> None:
        self.procs[f"slurmd-{node}"] = self._spawn(
            ["slurmd", "-D", "-N", node, "-f", str(self.conf)], f"slurmd-{node}.out")

    def kill_node(self, node: str) -> None:
        """The node is lost: its slurmd and every job process under it die at once."""
        proc = self.procs.pop(f"slurmd-{node}")
        proc.kill()
        proc.wait()
        jobs = self.run("squeue", "-h", "-w", node, "-o", "%i", check=False).split()
        for job in jobs:  # slurmstepd outlives a killed slurmd; a lost machine would not
            subprocess.run(["pkill", "-KILL", "-f", f"^slurmstepd: \\[{job}\\."], check=False)
            self._kill_job_processes(f"SLURM_JOB_ID={job}")

    def _kill_job_processes(self, marker: str) -> None:
        """SIGKILL every process of this cluster's jobs whose environment has ``marker``."""
        wanted = {marker.encode(), f"SLURM_CLUSTER_NAME={self.name}".encode()}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                env = set(Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"))
                if wanted <= env:
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue

    def logs(self) -> str:
        parts = []
        for log in sorted((self.root / "log").glob("*")):
            parts.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(parts)

    def _spawn(self, argv: list[str], out: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(self.root / "log" / out, "ab") as sink:
            return subprocess.Popen(argv, env=env or self.env(), stdout=sink, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def stop(self) -> None:
        self.run("scancel", "--full", "-u", self.user, check=False)
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        self._kill_job_processes(f"SLURM_CLUSTER_NAME={self.name}")  # jobs of lost nodes
        subprocess.run(["mysql", "-uroot", "-h", SLURMDBD_DB, "-e",
                        f"DROP DATABASE IF EXISTS `{self.database}`"], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, cluster: Cluster) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}\n{cluster.logs()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} does not listen on {port}\n{cluster.logs()}")


def start_cluster(*, nodes: tuple[str, ...] = NODES, gpus_per_node: int = GPUS_PER_NODE) -> Cluster:
    """``nodes`` × ``gpus_per_node`` fake GPUs, 4 CPUs a node (the tests: 2 × 2; bench/
    also asks for 2 × 4 and 4 × 2)."""
    root = Path(tempfile.mkdtemp(prefix="gpubot-slurm-"))
    root.chmod(0o755)  # the job user and slurmrestd's user read the configs
    tag = secrets.token_hex(3)
    ports = {"ctld": free_port(), "dbd": free_port(), "rest": free_port()}
    node_ports = {n: free_port() for n in nodes}
    cluster = Cluster(root=root, name=f"gpubot{tag}", url=f"http://127.0.0.1:{ports['rest']}",
                      token_file=root / "token", node_ports=node_ports,
                      database=f"gpubot_slurm_{tag}", nodes=nodes, gpus_per_node=gpus_per_node)
    for sub in ("log", "state", "spool", "etc"):
        (root / sub).mkdir()
    shared = cluster.shared
    shared.mkdir(mode=0o755)
    shutil.chown(shared, USER, USER)
    key = root / "etc" / "jwt.key"
    _write(key, secrets.token_hex(32), 0o600)
    jwt = f"AuthAltTypes=auth/jwt\nAuthAltParameters=jwt_key={key}\n"
    gres_lines, node_lines = [], []
    for n in nodes:
        devices = root / "dev" / n
        devices.mkdir(parents=True)
        for i in range(gpus_per_node):
            os.mknod(devices / f"nvidia{i}", 0o666 | 0o020000, os.makedev(195, i))
        gres_lines.append(f"NodeName={n} Name=gpu Type={GPU_TYPE} "
                          f"File={devices}/nvidia[0-{gpus_per_node - 1}]")
        node_lines.append(f"NodeName={n} NodeAddr=127.0.0.1 NodeHostname={socket.gethostname()} "
                          f"Port={node_ports[n]} CPUs=4 RealMemory=8000 "
                          f"Gres=gpu:{GPU_TYPE}:{gpus_per_node} State=UNKNOWN")
    _write(root / "etc" / "gres.conf", "AutoDetect=off\n" + "\n".join(gres_lines) + "\n")
    _write(cluster.conf, f"""ClusterName={cluster.name}
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ports['ctld']}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
{jwt}StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmdParameters=config_overrides
GresTypes=gpu
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={ports['dbd']}
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
JobRequeue=0
SlurmdTimeout=10
MinJobAge=300
KillWait=5
{chr(10).join(node_lines)}
PartitionName={PARTITION} Nodes={','.join(nodes)} Default=YES MaxTime=7-00:00:00 State=UP
""")
    _write(root / "etc" / "slurmdbd.conf", f"""AuthType=auth/munge
{jwt}DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={ports['dbd']}
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost={SLURMDBD_DB}
StoragePort=3306
StorageUser=root
StorageLoc={cluster.database}
PidFile={root}/slurmdbd.pid
LogFile={root}/log/slurmdbd.log
""", 0o600)
    try:
        dbd = cluster.procs["slurmdbd"] = cluster._spawn(["slurmdbd", "-D"], "slurmdbd.out")
        _wait_port(ports["dbd"], dbd, "slurmdbd", cluster)
        cluster.run("sacctmgr", "-i", "add", "cluster", cluster.name)
        cluster.run("sacctmgr", "-i", "add", "account", ACCOUNT)
        # operator: may raise its own jobs' time limits (extend)
        cluster.run("sacctmgr", "-i", "add", "user", USER, f"account={ACCOUNT}", "adminlevel=operator")
        ctld = cluster.procs["slurmctld"] = cluster._spawn(
            ["slurmctld", "-D", "-c", "-f", str(cluster.conf)], "slurmctld.out")
        _wait_port(ports["ctld"], ctld, "slurmctld", cluster)
        for n in nodes:
            cluster.start_node(n)
        cluster.wait_nodes("idle")
        token = cluster.run("scontrol", "token", f"username={USER}", "lifespan=86400").strip()
        _write(cluster.token_file, token.split("=", 1)[1] + "\n", 0o600)
        rest = cluster.procs["slurmrestd"] = cluster._spawn(
            ["slurmrestd", "-f", str(cluster.conf), "-a", "rest_auth/jwt", "-u", "nobody",
             "-s", "openapi/v0.0.38,openapi/dbv0.0.38", f"127.0.0.1:{ports['rest']}"],
            "slurmrestd.out", env={**cluster.env(), "SLURM_JWT": "daemon"})
        _wait_port(ports["rest"], rest, "slurmrestd", cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster
