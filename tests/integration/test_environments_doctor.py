"""`gpubot doctor`'s Environments check and `/gpu envs`' image facts, on the test engine:
each environment's image is present and declares its CUDA (label gpubot.cuda)."""

from __future__ import annotations

import docker
import pytest

from bot import doctor_access as acc
from bot.adapters.docker_images import DockerImages
from bot.domain.environments import Environment
from bot.domain.gpus import DriverInfo
from tests.infra import docker_engine as eng

pytestmark = pytest.mark.docker


def test_present_images_pass_and_a_missing_one_fails(docker_client: docker.DockerClient) -> None:
    envs = [Environment("default", eng.TEST_IMAGE), Environment("conda", eng.TEST_CONDA_IMAGE)]
    driver = [DriverInfo(driver_version="550.54.15", cuda_version="12.4")]
    ok = acc.environments(0, envs, driver, docker_client)
    assert ok.ok, ok
    assert "default=gpubot-jupyter:test (CUDA none)" in ok.detail
    missing = acc.environments(0, [*envs, Environment("gone", "gpubot-no-such:image")], driver,
                               docker_client)
    assert not missing.ok and "gpubot-no-such:image" in missing.detail


def test_the_image_inspector_reads_the_cuda_label(docker_client: docker.DockerClient) -> None:
    images = DockerImages(docker_client)
    assert images.inspect(eng.TEST_IMAGE).cuda == "none"  # built with CUDA_VERSION=none
    assert images.inspect("gpubot-no-such:image").present is False
