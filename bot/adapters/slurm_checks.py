"""Slurm probes for ``gpubot doctor`` (GPUBOT_ENGINE=slurm): slurmrestd and the controller
answer, the token's user is an operator (it raises time limits on extend), the
partition's MaxTime covers the longest lease plus the grace, and its nodes offer the GPUs
gpubot asks for. Each returns plain values; ``bot.doctor`` judges and renders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.adapters.slurm_inventory import gres_gpus
from bot.adapters.slurm_rest import SlurmRest
from bot.domain.errors import ContainerStartError

_INFINITE = 0xFFFFFFFF  # Slurm's INFINITE (MaxTime=UNLIMITED)


@dataclass(frozen=True)
class SlurmCheck:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_slurm_checks(rest: SlurmRest, *, user: str, partition: str, time_limit: timedelta,
                     gpu_type: str = "") -> list[SlurmCheck]:
    try:
        ping = rest.ping()
    except ContainerStartError as exc:
        return [SlurmCheck("slurmrestd", False, f"{exc.message} {exc.detail or ''}".strip(),
                           "check GPUBOT_SLURM_URL, GPUBOT_SLURM_TOKEN_FILE, GPUBOT_SLURM_USER")]
    release = ((ping.get("meta") or {}).get("Slurm") or {}).get("release", "?")
    up = [p for p in ping.get("pings") or [] if p.get("ping") == "UP"]
    results = [SlurmCheck("slurmrestd", bool(up), f"Slurm {release}; controller "
                          + ("UP" if up else "not answering"), "" if up else "start slurmctld")]
    results.append(_guard("operator", lambda: _operator(rest, user)))
    results.append(_guard("partition", lambda: _partition(rest, partition, time_limit)))
    results.append(_guard("gres", lambda: _gres(rest, partition, gpu_type)))
    return results


def _guard(name: str, check: object) -> SlurmCheck:
    try:
        return check()  # type: ignore[operator,no-any-return]
    except ContainerStartError as exc:
        return SlurmCheck(name, False, f"{exc.message} {exc.detail or ''}".strip())


def _operator(rest: SlurmRest, user: str) -> SlurmCheck:
    record = rest.accounting_user(user)
    level = str((record or {}).get("administrator_level") or "None")
    ok = level in ("Operator", "Administrator")
    return SlurmCheck("operator", ok, f"{user}: administrator level {level}",
                      "" if ok else f"sacctmgr add user {user} account=<account> adminlevel=operator "
                                    "(extending a lease raises its job's time limit)")


def _partition(rest: SlurmRest, name: str, time_limit: timedelta) -> SlurmCheck:
    found = rest.partition(name)
    if found is None:
        return SlurmCheck("partition", False, f"no partition {name}", "set GPUBOT_SLURM_PARTITION")
    raw = found.get("max_time_limit")
    needed = int(time_limit.total_seconds() // 60)
    if raw in (None, _INFINITE):
        return SlurmCheck("partition", True, f"{name}: MaxTime UNLIMITED")
    ok = int(raw) >= needed
    return SlurmCheck("partition", ok, f"{name}: MaxTime {int(raw)} min, leases need {needed} min "
                      "(GPUBOT_MAX_LEASE plus the grace)",
                      "" if ok else "raise the partition's MaxTime or lower GPUBOT_MAX_LEASE")


def _gres(rest: SlurmRest, partition: str, gpu_type: str) -> SlurmCheck:
    nodes = [n for n in rest.nodes() if partition in (n.get("partitions") or [])]
    offer: dict[str, int] = {}
    for node in nodes:
        _, count = gres_gpus(node.get("gres"), gpu_type)
        if count:
            offer[str(node.get("name"))] = count
    what = f"gpu:{gpu_type}" if gpu_type else "gpu"
    if not offer:
        return SlurmCheck("gres", False, f"no node of {partition} offers {what}",
                          "check gres.conf / Gres= of the nodes, or GPUBOT_SLURM_GPU_TYPE")
    listed = ", ".join(f"{n}={c}" for n, c in sorted(offer.items()))
    return SlurmCheck("gres", True, f"{sum(offer.values())} x {what} on {len(offer)} nodes ({listed})")
