"""``gpubot doctor`` checks that need no Docker engine: NVML (over the scripted library),
the CUDA trap, workspace, ports, database, Slack (against the Slack stand-in) and the
output. Docker is replaced by an unreachable factory here; test_doctor_docker.py runs
the Docker checks against real engines."""

from __future__ import annotations

import io
import json
import os
import random
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bot.adapters.docker_checks import ImageFacts
from bot.adapters.fake_gpus import SyntheticInventory
from bot.adapters.nvml import NvmlInventory
from bot.doctor import (
    CheckResult,
    _cuda,
    doctor_main,
    image_cuda_from_name,
    results_json,
    run_checks,
    run_checks_for_settings,
)
from bot.domain.gpus import DriverInfo
from tests.fakes.pynvml_standin import FakeGpu, FakeNvmlLib, installed
from tests.slack_standin.config import StandInConfig
from tests.slack_standin.standin import SlackStandIn

UUID = "GPU-0a0a0a0a-0000-4000-8000-000000000000"


def no_docker() -> Any:
    raise ConnectionError("Error while fetching server API version: connection refused")


def free_port_block(size: int = 5) -> tuple[int, int]:
    """A block of ports nothing listens on right now, on 127.0.0.1, below the kernel's
    ephemeral range (so outgoing connections of other processes cannot land in it)."""
    for _ in range(100):
        base = random.randrange(10_000, 20_000 - size)
        if all(_bindable(port) for port in range(base, base + size)):
            return base, base + size - 1
    raise RuntimeError("no free block of ports found")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def checks(tmp_path: Path, **overrides: Any) -> dict[str, CheckResult]:
    inputs: dict[str, Any] = {
        "fake_gpus": 2, "host": "lab-1", "image": "lab/jupyter:2024-cuda12.2-py311",
        "workspace_root": tmp_path, "bind_address": "127.0.0.1", "port_range": free_port_block(),
        "database_check": lambda: (True, "schema at head 20260101_0001"),
        "docker_client_factory": no_docker, "min_free_bytes": 1}
    return {r.name: r for r in run_checks(**{**inputs, **overrides})}


# ------------------------------------------------------------------ GPUs
def test_fake_gpus_skip_nvml_and_cuda_but_say_so(tmp_path: Path) -> None:
    result = checks(tmp_path, fake_gpus=3)
    assert result["GPUs (NVML)"].ok
    assert result["GPUs (NVML)"].detail.startswith("skipped: fake GPUs configured")
    assert "GPUBOT_FAKE_GPUS=3" in result["GPUs (NVML)"].detail
    assert result["CUDA: driver vs image"].ok and "skipped" in result["CUDA: driver vs image"].detail
    assert result["Docker GPU request"].ok and "skipped" in result["Docker GPU request"].detail


def test_nvml_missing_fails_with_the_way_out(tmp_path: Path) -> None:
    with installed(None):
        result = checks(tmp_path, fake_gpus=0)["GPUs (NVML)"]
    assert not result.ok and "libnvidia-ml.so.1" in result.detail
    assert "GPUBOT_FAKE_GPUS" in result.fix


def nvml_over(lib: FakeNvmlLib) -> Any:
    return lambda: NvmlInventory("lab-1")


def test_nvml_lists_gpus_and_driver(tmp_path: Path) -> None:
    lib = FakeNvmlLib([FakeGpu(UUID)], driver_version="535.104.05", cuda_version=12020)
    with installed(lib):
        result = checks(tmp_path, fake_gpus=0, inventory_factory=nvml_over(lib))
    nvml, cuda = result["GPUs (NVML)"], result["CUDA: driver vs image"]
    assert nvml.ok and "1 unit(s): NVIDIA H100 80GB HBM3" in nvml.detail
    assert "driver 535.104.05 (CUDA 12.2)" in nvml.detail
    assert cuda.ok and "12.2 >= 12.2" in cuda.detail and "image name" in cuda.detail
    assert lib.calls["nvmlShutdown"] == 1  # the doctor closes what it opened


def test_unhealthy_gpu_fails_the_nvml_check(tmp_path: Path) -> None:
    lib = FakeNvmlLib([FakeGpu(UUID, remapped_rows=(0, 1, 1, 0))])
    with installed(lib):
        result = checks(tmp_path, fake_gpus=0, inventory_factory=nvml_over(lib))["GPUs (NVML)"]
    assert not result.ok and UUID in result.detail and "remapping pending" in result.detail
    assert "nvidia-smi -r" in result.fix


def test_the_driver_525_trap(tmp_path: Path) -> None:
    """Driver 525 supports CUDA 12.0 only: a CUDA 12.2 image cannot start there."""
    lib = FakeNvmlLib([FakeGpu(UUID)], driver_version="525.147.05", cuda_version=12000)
    with installed(lib):
        result = checks(tmp_path, fake_gpus=0, inventory_factory=nvml_over(lib))
    cuda = result["CUDA: driver vs image"]
    assert not cuda.ok
    assert "driver 525.147.05 supports CUDA only up to 12.0" in cuda.detail
    assert "needs 12.2" in cuda.detail
    assert "CUDA Version >= 12.2" in cuda.fix and "GPUBOT_IMAGE" in cuda.fix
    assert "\n" not in cuda.fix


def test_image_label_wins_over_the_name() -> None:
    facts = ImageFacts(image_id="sha256:abc", size_bytes=1, cuda="12.4", cuda_source="label gpubot.cuda")
    result = _cuda(0, "lab/jupyter:cuda11.8", [DriverInfo("550.54.15", "12.4")], facts)
    assert result.ok and "label gpubot.cuda" in result.detail
    result = _cuda(0, "lab/jupyter:cuda11.8", [DriverInfo("535.54.03", "12.2")], facts)
    assert not result.ok and "needs 12.4" in result.detail


def test_image_without_cuda_passes_and_says_it_was_not_checked() -> None:
    result = _cuda(0, "gpubot-jupyter:latest", [DriverInfo("550.54.15", "12.4")], None)
    assert result.ok and result.detail.startswith("skipped:")


def test_versions_compare_as_numbers_not_text() -> None:
    assert _cuda(0, "x:cuda12.10", [DriverInfo("d", "12.9")], None).ok is False
    assert _cuda(0, "x:cuda12.9", [DriverInfo("d", "12.10")], None).ok is True


@pytest.mark.parametrize(("image", "cuda"), [
    ("lab/jupyter:2024-cuda12.2-py311", "12.2"), ("gpubot-jupyter:cuda12.4", "12.4"),
    ("registry.local:5000/nvidia/cuda:12.2.2-cudnn8-runtime-ubuntu22.04", "12.2"),
    ("lab/jupyter-CUDA11.8:latest", "11.8"), ("gpubot-jupyter:latest", None),
    ("registry.local:5000/jupyter:1.2", None),
])
def test_image_cuda_from_name(image: str, cuda: str | None) -> None:
    assert image_cuda_from_name(image) == cuda


def test_synthetic_inventory_can_stand_in_for_nvml(tmp_path: Path) -> None:
    result = checks(tmp_path, fake_gpus=0,
                    inventory_factory=lambda: SyntheticInventory(2, "lab-1"))["GPUs (NVML)"]
    assert result.ok and "2 unit(s): Synthetic GPU" in result.detail


# ---------------------------------------------------------------- Docker down
def test_docker_unreachable_fails_its_checks_and_says_why(tmp_path: Path) -> None:
    result = checks(tmp_path, fake_gpus=0, inventory_factory=lambda: SyntheticInventory(1, "h"))
    engine = result["Docker engine"]
    assert not engine.ok and "connection refused" in engine.detail and "DOCKER_HOST" in engine.fix
    for name in ("Docker GPU request", "Jupyter image"):
        assert not result[name].ok and "not checked" in result[name].detail


def test_docker_package_missing_is_a_failed_check(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)  # `import docker` now fails
    monkeypatch.delitem(sys.modules, "bot.adapters.docker_checks", raising=False)
    monkeypatch.delattr("bot.adapters.docker_checks", raising=False)
    engine = checks(tmp_path, docker_client_factory=None)["Docker engine"]
    assert not engine.ok and "`docker` Python package cannot be imported" in engine.detail
    assert "`docker` Python package" in engine.fix


# ------------------------------------------------------------------ workspace
def test_workspace_ok(tmp_path: Path) -> None:
    result = checks(tmp_path)["Workspace root"]
    assert result.ok and "writable" in result.detail
    assert list(tmp_path.iterdir()) == []  # the probe file is gone


def test_workspace_missing(tmp_path: Path) -> None:
    result = checks(tmp_path, workspace_root=tmp_path / "nope")["Workspace root"]
    assert not result.ok and "does not exist" in result.detail and "mkdir -p" in result.fix


def test_workspace_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = checks(tmp_path, workspace_root=tmp_path / "file")["Workspace root"]
    assert not result.ok and "not a directory" in result.detail


def test_workspace_read_only(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories; run as a normal user to check")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    result = checks(tmp_path, workspace_root=ro)["Workspace root"]
    assert not result.ok and "not writable" in result.detail


def test_workspace_low_disk(tmp_path: Path) -> None:
    result = checks(tmp_path, min_free_bytes=1 << 60)["Workspace root"]
    assert not result.ok and "GiB free" in result.detail and "free disk space" in result.fix


# ---------------------------------------------------------------------- ports
def test_ports_all_free(tmp_path: Path) -> None:
    lo, hi = free_port_block(5)
    result = checks(tmp_path, port_range=(lo, hi))["Port range"]
    assert result.ok and f"{lo}-{hi} on 127.0.0.1: all 5 free" == result.detail


def test_a_listening_port_is_reported(tmp_path: Path) -> None:
    lo, hi = free_port_block(5)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", lo + 2))
        holder.listen()
        result = checks(tmp_path, port_range=(lo, hi))["Port range"]
        expected = checks(tmp_path, port_range=(lo, hi), expected_busy_ports={lo + 2})["Port range"]
    assert not result.ok and "1 of 5 ports" in result.detail and str(lo + 2) in result.detail
    assert "GPUBOT_PORT_RANGE" in result.fix
    assert expected.ok  # e.g. ports of the bot's own running leases


def test_bind_address_not_on_this_host(tmp_path: Path) -> None:
    result = checks(tmp_path, bind_address="192.0.2.1")["Port range"]  # TEST-NET-1
    assert not result.ok and "not an address of this host" in result.detail


# ------------------------------------------------------------------- database
def test_database_callable_decides(tmp_path: Path) -> None:
    ok = checks(tmp_path)["Database"]
    behind = checks(tmp_path, database_check=lambda: (False, "at 0001, head is 0003"))["Database"]
    assert ok.ok and ok.detail == "schema at head 20260101_0001" and ok.fix == ""
    assert not behind.ok and "gpubot db upgrade" in behind.fix


def test_a_crashing_check_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("could not connect to server")

    result = checks(tmp_path, database_check=broken)["Database"]
    assert not result.ok and "RuntimeError: could not connect to server" in result.detail


# ---------------------------------------------------------------------- Slack
@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    standin = SlackStandIn(StandInConfig()).start()
    yield standin
    standin.stop()


def test_slack_token_valid(tmp_path: Path, slack: SlackStandIn) -> None:
    result = checks(tmp_path, slack_token=slack.bot_token, slack_api_url=slack.api_url)["Slack token"]
    assert result.ok and result.detail.startswith(f"valid at {slack.api_url.rstrip('/')}/")
    assert slack.bot_token not in result.detail


def test_slack_token_refused(tmp_path: Path, slack: SlackStandIn) -> None:
    result = checks(tmp_path, slack_token="xoxb-not-a-real-token",
                    slack_api_url=slack.api_url)["Slack token"]
    assert not result.ok and "invalid_auth" in result.detail and "SLACK_BOT_TOKEN" in result.fix
    assert "xoxb-not-a-real-token" not in result.detail


def test_slack_unreachable(tmp_path: Path) -> None:
    lo, _ = free_port_block(1)
    result = checks(tmp_path, slack_token="xoxb-1", slack_api_url=f"http://127.0.0.1:{lo}/api/")
    assert not result["Slack token"].ok and "cannot reach" in result["Slack token"].detail


def test_slack_not_configured_is_skipped(tmp_path: Path) -> None:
    result = checks(tmp_path, slack_token=None)["Slack token"]
    assert result.ok and result.detail.startswith("skipped:")


# --------------------------------------------------------------------- output
def test_settings_object_is_read_for_the_inputs(tmp_path: Path) -> None:
    lo, hi = free_port_block(3)

    class FakeSettings:
        fake_gpus, host_name, image = 1, "lab-9", "gpubot-jupyter:latest"
        workspace_root, bind_address, port_range = str(tmp_path), "127.0.0.1", f"{lo}-{hi}"
        slack_bot_token, slack_api_url = None, "https://slack.com/api/"

    results = {r.name: r for r in run_checks_for_settings(
        FakeSettings(), database_check=lambda: (True, "ok"), docker_client_factory=no_docker)}
    assert results["Port range"].detail == f"{lo}-{hi} on 127.0.0.1: all 3 free"
    assert str(tmp_path) in results["Workspace root"].detail
    assert "GPUBOT_FAKE_GPUS=1" in results["GPUs (NVML)"].detail


def test_doctor_main_exit_codes_and_json(tmp_path: Path) -> None:
    results = list(checks(tmp_path).values())
    out = io.StringIO()
    code = doctor_main(results, True, Console(file=out, width=200))
    document = json.loads(out.getvalue())
    assert code == 1  # Docker is unreachable in this test
    assert document["ok"] is False
    assert [c["name"] for c in document["checks"]] == [r.name for r in results]
    assert {"name", "ok", "detail", "fix"} == set(document["checks"][0])
    passing = [r for r in results if r.ok]
    assert doctor_main(passing, True, Console(file=io.StringIO())) == 0
    assert json.loads(results_json(passing))["ok"] is True


def test_table_shows_engine_text_literally() -> None:
    results = [CheckResult("Docker GPU request", False,
                           'failed at start: could not select device driver "" with '
                           "capabilities: [[gpu]]", "install the NVIDIA Container Toolkit"),
               CheckResult("Database", True, "at head")]
    out = io.StringIO()
    code = doctor_main(results, False, Console(file=out, width=250))
    text = out.getvalue()
    assert code == 1
    assert "capabilities: [[gpu]]" in text and "FAIL" in text and "1 check(s) failed" in text
