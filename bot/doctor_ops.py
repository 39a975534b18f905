"""Doctor checks of what issue 15 added around the engine: the Slurm controller and the
operator's rights (GPUBOT_ENGINE=slurm), and the metrics address being free."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

from bot.doctor_types import CheckResult
from bot.settings import parse_listen_address

METRICS = "Metrics address"


def slurm(*, url: str, token_file: Path, user: str, partition: str, time_limit: timedelta,
          gpu_type: str) -> list[CheckResult]:
    """slurmrestd answers, the token's user is an operator, the partition's MaxTime covers
    the longest lease plus the grace, its nodes have the GPUs gpubot asks for."""
    from bot.adapters.slurm_checks import run_slurm_checks
    from bot.adapters.slurm_rest import SlurmRest

    rest = SlurmRest(url, token_file=token_file, user=user)
    return [CheckResult(f"Slurm {c.name}", c.ok, c.detail, c.fix) for c in run_slurm_checks(
        rest, user=user, partition=partition, time_limit=time_limit, gpu_type=gpu_type)]


def metrics_address(address: str | None, *, serving: bool = False) -> CheckResult:
    """The /metrics address can be bound (unless this bot already serves it)."""
    if not address:
        return CheckResult(METRICS, True, "skipped: GPUBOT_METRICS_ADDRESS is not set")
    host, port = parse_listen_address(address)
    if serving:
        return CheckResult(METRICS, True, f"{host}:{port}: served by this bot")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return CheckResult(METRICS, False, f"{host}:{port} cannot be bound: {exc.strerror}",
                               "stop what listens there (`ss -ltnp`) or move "
                               "GPUBOT_METRICS_ADDRESS")
    return CheckResult(METRICS, True, f"{host}:{port} is free")
