"""``gpubot doctor``'s Docker checks against real engines (tests/infra/setup_docker.sh):

- the main engine runs with a stand-in ``nvidia-container-runtime-hook`` on its PATH, so
  dockerd registers its nvidia device driver and a GPU device request starts;
- the second engine has no hook: dockerd 20.10 *creates* the container and refuses to
  *start* it with ``could not select device driver "" with capabilities: [[gpu]]``.

Skipped with the reason when an engine is unreachable; under CI=true that fails instead.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters import docker_checks
from bot.adapters.fake_gpus import SyntheticInventory
from bot.adapters.nvml import NvmlInventory
from bot.doctor import CheckResult, run_checks
from tests.fakes.pynvml_standin import FakeGpu, FakeNvmlLib, installed
from tests.support.engines import need

pytestmark = pytest.mark.docker

MAIN = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
NOHOOK = os.environ.get("GPUBOT_NOHOOK_DOCKER_HOST", "unix:///run/gpubot-nohook/docker.sock")
HOOK_LOG = os.environ.get("GPUBOT_FAKE_HOOK_LOG", "/tmp/gpubot-fake-nvidia-hook.log")
PROBE_IMAGE = "gpubot-doctor-probe:test"  # busybox, labelled gpubot.cuda=12.2


def busybox_rootfs() -> bytes:
    """A tar of a root file system holding a static busybox and ``true``/``sh`` links."""
    busybox = shutil.which("busybox")
    need(busybox is not None, "busybox (busybox-static) is not installed: run "
         "tests/infra/setup_docker.sh")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(busybox, arcname="bin/busybox")  # type: ignore[arg-type]
        for applet in ("true", "sh"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return buffer.getvalue()


def engine(url: str, what: str) -> Any:
    try:
        client = docker_checks.connect(url)
    except docker_checks.DockerUnavailable as exc:
        need(False, f"{what} not reachable at {url} ({exc}): run tests/infra/setup_docker.sh")
    from docker.errors import ImageNotFound

    try:
        client.images.get(PROBE_IMAGE)
    except ImageNotFound:
        client.api.import_image_from_data(
            busybox_rootfs(), repository=PROBE_IMAGE.split(":")[0], tag=PROBE_IMAGE.split(":")[1],
            changes=["LABEL gpubot.cuda=12.2"])
    return client


@pytest.fixture(scope="module")
def main_engine() -> Iterator[Any]:
    client = engine(MAIN, "Docker engine with the NVIDIA hook")
    yield client
    client.close()


@pytest.fixture(scope="module")
def nohook_engine() -> Iterator[Any]:
    client = engine(NOHOOK, "Docker engine without the NVIDIA hook")
    yield client
    client.close()


def doctor(client: Any, image: str = PROBE_IMAGE, **overrides: Any) -> dict[str, CheckResult]:
    inputs: dict[str, Any] = {
        "fake_gpus": 0, "host": "lab-1", "image": image,
        "workspace_root": Path(tempfile.gettempdir()), "bind_address": "127.0.0.1",
        "port_range": (0, 0), "database_check": lambda: (True, "ok"),
        "docker_client_factory": lambda: client,
        "inventory_factory": lambda: SyntheticInventory(1, "lab-1")}
    return {r.name: r for r in run_checks(**{**inputs, **overrides})}


def probe_leftovers(client: Any) -> list[Any]:
    return list(client.containers.list(all=True, filters={"label": docker_checks.PROBE_LABEL}))


def test_engine_is_reported_with_its_version(main_engine: Any) -> None:
    result = doctor(main_engine)["Docker engine"]
    assert result.ok and result.detail.startswith("dockerd ")
    assert main_engine.version()["Version"] in result.detail


def test_gpu_request_starts_where_the_nvidia_hook_is_installed(main_engine: Any) -> None:
    result = doctor(main_engine)["Docker GPU request"]
    assert result.ok, result
    assert "count=1, [[gpu]]" in result.detail
    assert probe_leftovers(main_engine) == []


def test_the_hook_saw_the_probe_s_device_request(main_engine: Any) -> None:
    need(os.path.exists(HOOK_LOG), f"the fake hook's log {HOOK_LOG} is missing")
    log = Path(HOOK_LOG)
    before = len(log.read_text().splitlines())
    assert docker_checks.gpu_request_probe(main_engine, PROBE_IMAGE).ok
    new_lines = log.read_text().splitlines()[before:]
    assert any("NVIDIA_VISIBLE_DEVICES=0" in line for line in new_lines), new_lines


def test_gpu_request_fails_without_the_container_toolkit(nohook_engine: Any) -> None:
    result = doctor(nohook_engine)["Docker GPU request"]
    assert not result.ok
    assert 'could not select device driver "" with capabilities: [[gpu]]' in result.detail
    assert "nvidia-container-toolkit" in result.fix and "restart dockerd" in result.fix
    assert probe_leftovers(nohook_engine) == []


def test_dockerd_20_10_refuses_at_start_not_at_create(nohook_engine: Any) -> None:
    outcome = docker_checks.gpu_request_probe(nohook_engine, PROBE_IMAGE)
    version = nohook_engine.version()["Version"]
    assert not outcome.ok and "could not select device driver" in outcome.detail
    if version.startswith("20.10"):
        assert outcome.stage == "start", outcome
    assert probe_leftovers(nohook_engine) == []


def test_fake_gpus_skip_the_gpu_request(nohook_engine: Any) -> None:
    result = doctor(nohook_engine, fake_gpus=2)["Docker GPU request"]
    assert result.ok and result.detail.startswith("skipped: fake GPUs")


def test_image_present_with_its_cuda_label(main_engine: Any) -> None:
    facts = docker_checks.image_facts(main_engine, PROBE_IMAGE)
    assert facts is not None and (facts.cuda, facts.cuda_source) == ("12.2", "label gpubot.cuda")
    result = doctor(main_engine)["Jupyter image"]
    assert result.ok and PROBE_IMAGE in result.detail and "CUDA 12.2" in result.detail


def test_image_missing(main_engine: Any) -> None:
    result = doctor(main_engine, image="gpubot-doctor-absent:nope")
    assert not result["Jupyter image"].ok
    assert "not present locally" in result["Jupyter image"].detail
    assert "docker pull gpubot-doctor-absent:nope" in result["Jupyter image"].fix
    assert not result["Docker GPU request"].ok
    assert "not checked" in result["Docker GPU request"].detail


def test_cuda_trap_read_from_the_image_label(main_engine: Any) -> None:
    lib = FakeNvmlLib([FakeGpu("GPU-0a0a0a0a-0000-4000-8000-000000000000")],
                      driver_version="525.147.05", cuda_version=12000)
    with installed(lib):
        result = doctor(main_engine, inventory_factory=lambda: NvmlInventory("lab-1"))
    cuda = result["CUDA: driver vs image"]
    assert not cuda.ok and "label gpubot.cuda" in cuda.detail
    assert "up to 12.0" in cuda.detail and "needs 12.2" in cuda.detail


def test_cuda_version_from_the_environment_of_nvidia_images(main_engine: Any) -> None:
    image = "gpubot-doctor-probe:cuda-env"
    main_engine.api.import_image_from_data(busybox_rootfs(), repository=image.split(":")[0],
                                           tag=image.split(":")[1],
                                           changes=["ENV CUDA_VERSION=12.4.1"])
    try:
        facts = docker_checks.image_facts(main_engine, image)
        assert facts is not None and (facts.cuda, facts.cuda_source) == ("12.4", "env CUDA_VERSION")
    finally:
        main_engine.images.remove(image)
