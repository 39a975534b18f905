"""Doctor: the metrics address must be bindable, and with GPUBOT_ENGINE=slurm the Slurm
controller is checked (an unreachable slurmrestd fails the check, never crashes it)."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

from bot import doctor_ops


def test_a_taken_metrics_address_fails_and_a_free_one_passes() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        taken = doctor_ops.metrics_address(f"127.0.0.1:{port}")
    assert not taken.ok and "cannot be bound" in taken.detail and "GPUBOT_METRICS_ADDRESS" in taken.fix
    assert doctor_ops.metrics_address(f"127.0.0.1:{port}").ok  # free again
    assert doctor_ops.metrics_address(None).detail.startswith("skipped")


def test_an_unreachable_slurmrestd_is_a_failed_check(tmp_path: Path) -> None:
    token = tmp_path / "slurm.jwt"
    token.write_text("not-a-real-token\n")
    token.chmod(0o600)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    [check] = doctor_ops.slurm(url=f"http://127.0.0.1:{port}", token_file=token, user="gpubot",
                               partition="gpu", time_limit=timedelta(days=7), gpu_type="")
    assert check.name == "Slurm slurmrestd" and not check.ok
    assert "GPUBOT_SLURM_URL" in check.fix


def test_on_slurm_the_doctor_checks_the_cluster_not_this_hosts_gpus_docker_or_ports(
        tmp_path: Path) -> None:
    """The bot host of a cluster need not have GPUs, Docker or the lease ports."""
    from bot.doctor import run_checks

    def no_docker() -> object:
        raise ConnectionError("no dockerd here")

    token = tmp_path / "slurm.jwt"
    token.write_text("t\n")
    slurm = dict(url="http://127.0.0.1:9", token_file=token, user="gpubot", partition="gpu",
                 time_limit=timedelta(days=7), gpu_type="")
    names = {c.name for c in run_checks(
        fake_gpus=0, host="h", image="i", workspace_root=tmp_path, bind_address="127.0.0.1",
        port_range=(1, 2), docker_client_factory=no_docker, slurm=slurm)}
    assert "Slurm slurmrestd" in names and "Workspace root" in names
    assert not names & {"GPUs (NVML)", "Docker engine", "Jupyter image", "Port range",
                        "Docker live-restore", "Lease isolation"}
    on_docker = {c.name for c in run_checks(
        fake_gpus=0, host="h", image="i", workspace_root=tmp_path, bind_address="127.0.0.1",
        port_range=(1, 2), docker_client_factory=no_docker)}
    assert {"GPUs (NVML)", "Docker engine", "Port range"} <= on_docker
