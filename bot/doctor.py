"""``gpubot doctor``: preflight checks of everything the bot needs on this host.

Every check returns a ``CheckResult`` whose ``fix`` is one line an admin can act on.
A check that does not apply (fake GPUs, no Slack token) passes with a detail starting
``skipped:``. Inputs are explicit (``run_checks``) or read from a settings object
(``run_checks_for_settings``); nothing is read at import time. Docker and Slack are
reached only through ``bot.adapters.docker_checks`` / ``bot.adapters.slack_checks``.
"""

from __future__ import annotations

import errno
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from bot.doctor_output import doctor_main, render_table, results_json  # noqa: F401
from bot.doctor_slack import _admin_channel, _slack
from bot.doctor_types import CheckResult, DatabaseCheck
from bot.domain.gpus import DriverInfo
from bot.ports import GpuInventory
from bot.settings import Settings

GIB = 1024**3
DEFAULT_MIN_FREE_BYTES = 20 * GIB
_IMAGE_CUDA = (re.compile(r"cuda[-_]?(\d+)\.(\d+)", re.IGNORECASE), re.compile(r"(?:^|/)cuda:(\d+)\.(\d+)"))




def run_checks(
    *, fake_gpus: int, host: str, image: str, workspace_root: Path, bind_address: str,
    port_range: tuple[int, int], database_check: DatabaseCheck | None = None,
    slack_token: str | None = None, slack_api_url: str = "https://slack.com/api/",
    admin_channel: str | None = None,
    docker_client_factory: Callable[[], Any] | None = None,
    inventory_factory: Callable[[], GpuInventory] | None = None,
    min_free_bytes: int = DEFAULT_MIN_FREE_BYTES, expected_busy_ports: Collection[int] = (),
    block_host_access: bool = True, rootfs_size: str = "",
    proxy: Any = None, domain: str | None = None, proxy_root_file: Path | None = None,
    environments: Sequence[Any] = (), metrics_address: str | None = None,
    slurm: dict[str, Any] | None = None,
) -> list[CheckResult]:
    """All checks, in a fixed order. Never raises: a crashing check is a failed one."""
    def guard(name: str, check: Callable[[], CheckResult]) -> CheckResult:
        try:
            return check()
        except Exception as exc:  # noqa: BLE001 - the doctor reports, it does not crash
            return CheckResult(name, False, f"the check itself failed: {type(exc).__name__}: {exc}",
                               "run `gpubot doctor` again; if it persists, report it with this line")

    driver: list[DriverInfo] = []
    results: list[CheckResult] = []
    client: Any = None
    facts: Any = None
    on_this_host = slurm is None  # on Slurm, GPUs, images and ports are the nodes': not here
    if on_this_host:
        client, facts = _docker_host_checks(results, guard, fake_gpus=fake_gpus, host=host, image=image,
                                     inventory_factory=inventory_factory, driver=driver,
                                     docker_client_factory=docker_client_factory)
    results.append(guard("Workspace root", lambda: _workspace(workspace_root, min_free_bytes)))
    results.append(guard("Database", lambda: _database(database_check)))
    results.append(guard("Slack token", lambda: _slack(slack_token, slack_api_url)))
    results.append(guard("Admin channel", lambda: _admin_channel(slack_token, slack_api_url,
                                                                 admin_channel)))
    from bot import doctor_engine as eng  # the engine's containment (issue 11.14, 16, 17)

    if on_this_host:
        results.append(guard("Port range", lambda: _ports(bind_address, port_range,
                                                          expected_busy_ports)))
        results.append(guard("Docker live-restore", lambda: eng.live_restore(client)))
        results.append(guard("Lease isolation", lambda: eng.lease_isolation(block_host_access)))
        results.append(guard("Writable layer bound", lambda: eng.writable_layer(
            client, image, rootfs_size, facts is not None)))
    results.append(guard("Workspace usage", lambda: eng.workspace_usage(workspace_root)))
    from bot import doctor_access as acc  # HTTPS and environments (issue 13)

    results.append(guard(acc.PROXY, lambda: acc.proxy(proxy, domain)))
    results.append(guard(acc.CERT, lambda: acc.certificate(proxy, domain, proxy_root_file)))
    if environments and on_this_host:
        results.append(guard(acc.ENVS, lambda: acc.environments(fake_gpus, environments,
                                                                driver, client)))
    from bot import doctor_ops as ops  # the engine's controller, /metrics (issue 14, 15)

    results.append(guard(ops.METRICS, lambda: ops.metrics_address(metrics_address)))
    if slurm is not None:
        try:
            results += ops.slurm(**slurm)
        except Exception as exc:  # noqa: BLE001 - reported like any failed check
            results.append(CheckResult("Slurm", False, f"the check itself failed: {exc}"))
    return results


def run_checks_for_settings(settings: Any, **overrides: Any) -> list[CheckResult]:
    """``run_checks`` with its inputs read from a ``bot.settings.Settings``-like object;
    ``overrides`` (e.g. ``database_check``) are passed through."""
    lo, hi = (int(part) for part in str(settings.port_range).split("-", 1))
    inputs: dict[str, Any] = {
        "fake_gpus": settings.fake_gpus, "host": settings.host_name, "image": settings.image,
        "workspace_root": Path(settings.workspace_root), "bind_address": settings.bind_address,
        "port_range": (lo, hi), "slack_token": settings.slack_bot_token,
        "slack_api_url": settings.slack_api_url,
        "block_host_access": getattr(settings, "block_host_access", True),
        "rootfs_size": getattr(settings, "rootfs_size", "")}
    if isinstance(settings, Settings):  # the proxy and environments of this installation
        from bot.bootstrap_access import caddy_root_file, make_proxy

        inputs.update(proxy=make_proxy(settings), domain=settings.domain,
                      proxy_root_file=caddy_root_file(settings),
                      environments=settings.environments)
    inputs["admin_channel"] = getattr(settings, "admin_channel", None)
    inputs["metrics_address"] = getattr(settings, "metrics_address", None)
    if getattr(settings, "engine", "docker") == "slurm":
        inputs["slurm"] = {"url": settings.slurm_url, "token_file": settings.slurm_token_file,
                           "user": settings.slurm_user, "partition": settings.slurm_partition,
                           "time_limit": settings.max_lease + settings.slurm_grace,
                           "gpu_type": settings.slurm_gpu_type}
    return run_checks(**{**inputs, **overrides})


def _docker_host_checks(results: list[CheckResult], guard: Callable[..., CheckResult], *,
                        fake_gpus: int, host: str, image: str,
                        inventory_factory: Callable[[], GpuInventory] | None,
                        driver: list[DriverInfo],
                        docker_client_factory: Callable[[], Any] | None) -> tuple[Any, Any]:
    """NVML, the driver against the image, Docker and its GPU request, the image: what a
    Docker host needs. Returns the Docker client (None when unreachable) and what it
    knows of the image (None when it has none)."""
    results.append(guard("GPUs (NVML)", lambda: _nvml(fake_gpus, host, inventory_factory, driver)))
    client: Any = None
    docker_error = ""
    try:
        from bot.adapters import docker_checks

        client = (docker_client_factory or docker_checks.connect)()
    except ImportError as exc:
        docker_error = f"the `docker` Python package cannot be imported ({exc})"
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        docker_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    facts = guard_value(lambda: docker_checks.image_facts(client, image)) if client else None
    results.append(guard("CUDA: driver vs image", lambda: _cuda(fake_gpus, image, driver, facts)))
    results.append(guard("Docker engine", lambda: _docker(client, docker_error)))
    results.append(guard("Docker GPU request", lambda: _gpu_request(fake_gpus, client, image, facts)))
    results.append(guard("Jupyter image", lambda: _image(client, image, facts)))
    return client, facts


def guard_value(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception:  # noqa: BLE001 - the checks that need the value report the problem
        return None


# ------------------------------------------------------------------- checks
def _nvml(fake_gpus: int, host: str, factory: Callable[[], GpuInventory] | None,
          driver_out: list[DriverInfo]) -> CheckResult:
    name = "GPUs (NVML)"
    if fake_gpus > 0:
        return CheckResult(name, True, f"skipped: fake GPUs configured (GPUBOT_FAKE_GPUS="
                           f"{fake_gpus}), NVML is not used")
    from bot.domain.errors import GpuBackendUnavailable

    try:
        inventory = factory() if factory else _nvml_inventory(host)
    except GpuBackendUnavailable as exc:
        return CheckResult(name, False, exc.message, "install/fix the NVIDIA driver until "
                           "`nvidia-smi` works, or set GPUBOT_FAKE_GPUS=N on a host without GPUs")
    try:
        gpus, driver = inventory.list_gpus(), inventory.driver()
    finally:
        getattr(inventory, "close", lambda: None)()
    driver_out.append(driver)
    names = sorted({g.name for g in gpus})
    summary = (f"{len(gpus)} unit(s): {', '.join(names)}; driver {driver.driver_version} "
               f"(CUDA {driver.cuda_version})")
    sick = [g for g in gpus if not g.healthy]
    if not gpus:
        return CheckResult(name, False, f"NVML lists no GPU; driver {driver.driver_version}",
                           "check `nvidia-smi -L`; in MIG mode, create MIG instances")
    if sick:
        reasons = "; ".join(f"{g.index} {g.uuid}: {g.health_reason}" for g in sick)
        return CheckResult(name, False, f"{summary}; UNHEALTHY {reasons}",
                           "reset (`nvidia-smi -r -i N`) or service the listed GPUs; "
                           "they are never leased meanwhile")
    return CheckResult(name, True, summary)


def _nvml_inventory(host: str) -> GpuInventory:
    from bot.adapters.nvml import NvmlInventory

    return NvmlInventory(host)


def image_cuda_from_name(image: str) -> str | None:
    """``X.Y`` from ``...-cudaX.Y-...``, ``...:cudaX.Y`` or ``nvidia/cuda:X.Y...``."""
    for pattern in _IMAGE_CUDA:
        match = pattern.search(image)
        if match:
            return f"{match[1]}.{match[2]}"
    return None


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def _cuda(fake_gpus: int, image: str, driver: list[DriverInfo], facts: Any) -> CheckResult:
    name = "CUDA: driver vs image"
    if fake_gpus > 0:
        return CheckResult(name, True, "skipped: fake GPUs configured, containers get no GPU")
    needed, source = (facts.cuda, facts.cuda_source) if facts and facts.cuda else (
        image_cuda_from_name(image), "image name")
    if not driver:
        return CheckResult(name, False, "not checked: NVML did not answer",
                           "fix the 'GPUs (NVML)' check first")
    have, version = driver[0].cuda_version, driver[0].driver_version
    if needed is None:
        return CheckResult(name, True, f"skipped: {image} states no CUDA version (label "
                           f"gpubot.cuda, env CUDA_VERSION or a cudaX.Y tag); driver {version} "
                           f"supports CUDA {have}")
    if have is None:
        return CheckResult(name, True, f"skipped: driver {version} does not report its CUDA "
                           f"version; image needs {needed} ({source})")
    if _version(have) >= _version(needed):
        return CheckResult(name, True, f"driver {version} supports CUDA {have} >= {needed} "
                           f"needed by {image} ({source})")
    return CheckResult(
        name, False, f"driver {version} supports CUDA only up to {have}, but {image} needs "
        f"{needed} ({source}): its containers will not start",
        f"install an NVIDIA driver whose `nvidia-smi` shows CUDA Version >= {needed}, or set "
        f"GPUBOT_IMAGE to an image built for CUDA <= {have}")


def _docker(client: Any, error: str) -> CheckResult:
    if client is None:
        fix = ("install gpubot's dependencies (the `docker` Python package)"
               if "`docker` Python package" in error else
               "start dockerd (`systemctl start docker`) and let the bot's user use its socket "
               "(docker group), or set DOCKER_HOST")
        return CheckResult("Docker engine", False, f"not reachable: {error}", fix)
    from bot.adapters import docker_checks

    return CheckResult("Docker engine", True, f"dockerd {docker_checks.engine_version(client)}")


def _gpu_request(fake_gpus: int, client: Any, image: str, facts: Any) -> CheckResult:
    name = "Docker GPU request"
    if fake_gpus > 0:
        return CheckResult(name, True, "skipped: fake GPUs configured, containers get no "
                           "GPU device request")
    if client is None:
        return CheckResult(name, False, "not checked: Docker is not reachable",
                           "fix the 'Docker engine' check first")
    if facts is None:
        return CheckResult(name, False, f"not checked: image {image} is not present",
                           "fix the 'Jupyter image' check first")
    from bot.adapters import docker_checks

    outcome = docker_checks.gpu_request_probe(client, image)
    if outcome.ok:
        return CheckResult(name, True, f"{outcome.detail} ({image}, count=1, [[gpu]])")
    detail = f"failed at {outcome.stage}: {outcome.detail}"
    if "could not select device driver" in outcome.detail:
        fix = ("install the NVIDIA Container Toolkit (nvidia-container-toolkit) so dockerd finds "
               "nvidia-container-runtime-hook, then restart dockerd")
    elif "unsatisfied condition: cuda" in outcome.detail:
        fix = "the driver is older than the image's CUDA: see the 'CUDA' check's fix"
    else:
        fix = f"run `docker run --rm --gpus 1 --entrypoint true {image}` to see the full error"
    return CheckResult(name, False, detail, fix)


def _image(client: Any, image: str, facts: Any) -> CheckResult:
    if client is None:
        return CheckResult("Jupyter image", False, "not checked: Docker is not reachable",
                           "fix the 'Docker engine' check first")
    if facts is None:
        return CheckResult("Jupyter image", False, f"{image} is not present locally",
                           f"`docker pull {image}`, or build it: `docker build -t {image} image/`")
    return CheckResult("Jupyter image", True, f"{image} ({facts.image_id}, "
                       f"{facts.size_bytes / GIB:.1f} GiB, CUDA {facts.cuda or 'not stated'})")


def _workspace(root: Path, min_free: int) -> CheckResult:
    name = "Workspace root"
    mkdir = f"`sudo mkdir -p {root} && sudo chown $(id -u) {root}` as the bot's user"
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        return CheckResult(name, False, f"{root} {what}", mkdir)
    try:
        with tempfile.NamedTemporaryFile(dir=root, prefix=".gpubot-doctor-"):
            pass
    except OSError as exc:
        return CheckResult(name, False, f"{root} is not writable: {exc.strerror}", mkdir)
    free = shutil.disk_usage(root).free
    if free < min_free:
        return CheckResult(name, False, f"{root}: only {free / GIB:.1f} GiB free "
                           f"(< {min_free / GIB:.0f} GiB)", f"free disk space on {root}'s file system")
    return CheckResult(name, True, f"{root}: writable, {free / GIB:.1f} GiB free")


def _database(check: DatabaseCheck | None) -> CheckResult:
    fix = "check DATABASE_URL, then run `gpubot db upgrade`"
    if check is None:
        return CheckResult("Database", False, "no database check was given", fix)
    ok, detail = check()
    return CheckResult("Database", ok, detail, "" if ok else fix)


def _ports(address: str, port_range: tuple[int, int], expected: Collection[int]) -> CheckResult:
    name = "Port range"
    lo, hi = port_range
    busy: list[int] = []
    for port in range(lo, hi + 1):
        family, _, _, _, sockaddr = socket.getaddrinfo(
            address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:
                    return CheckResult(name, False, f"{address} is not an address of this host",
                                       "set GPUBOT_BIND_ADDRESS to one of this host's addresses")
                if port not in expected:
                    busy.append(port)
    total = hi - lo + 1
    if busy:
        sample = ", ".join(map(str, busy[:8])) + (" ..." if len(busy) > 8 else "")
        return CheckResult(name, False, f"{len(busy)} of {total} ports on {address} in use "
                           f"by something else: {sample}", "stop what holds them (`ss -ltnp`) "
                           "or move GPUBOT_PORT_RANGE")
    return CheckResult(name, True, f"{lo}-{hi} on {address}: all {total} free")
