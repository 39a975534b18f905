"""The Jupyter container as a user meets it: password login over HTTP, and the image's
refusal to run without a valid password hash."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import docker
import pytest

from bot.adapters.docker import DockerRuntime
from bot.domain.errors import ContainerStartError
from tests.infra import docker_engine as eng
from tests.integration.conftest import Lease
from tests.support import jupyter

pytestmark = pytest.mark.docker
READY = timedelta(seconds=90)


@pytest.fixture
def running(make_runtime: Callable[..., DockerRuntime], new_lease: Callable[..., Lease]) -> Lease:
    lease = new_lease()
    runtime = make_runtime()
    handle = runtime.start(lease.spec)
    runtime.wait_ready(handle, port=lease.spec.port, timeout=READY)
    return lease


def test_the_generated_password_logs_in(running: Lease) -> None:
    session = jupyter.session()
    assert session.get(f"{running.url}/api/status", timeout=10).status_code == 403
    answer = jupyter.login(session, running.url, running.password)
    assert answer.status_code == 302
    status = session.get(f"{running.url}/api/status", timeout=10)
    assert status.status_code == 200
    assert "started" in status.json()


def test_a_wrong_password_is_refused(running: Lease) -> None:
    session = jupyter.session()
    answer = jupyter.login(session, running.url, running.password + "x")
    assert answer.status_code != 302
    assert session.get(f"{running.url}/api/status", timeout=10).status_code == 403


def test_no_token_login_and_no_password_change(running: Lease) -> None:
    session = jupyter.session()
    page = session.get(f"{running.url}/login", timeout=10)
    assert "new_password" not in page.text  # allow_password_change=False
    assert session.get(f"{running.url}/api/status?token=", timeout=10).status_code == 403


def test_an_invalid_password_hash_stops_the_container_with_a_clear_log(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
) -> None:
    lease = new_lease(password_hash="plaintext-is-not-a-hash")
    runtime = make_runtime()
    handle = runtime.start(lease.spec)
    with pytest.raises(ContainerStartError) as caught:
        runtime.wait_ready(handle, port=lease.spec.port, timeout=READY)
    assert "exit code 78" in caught.value.message
    assert "not a jupyter_server password hash" in (caught.value.detail or "")
    runtime.stop(lease.spec.lease_id)


def test_wait_ready_gives_up_at_its_timeout(
    make_runtime: Callable[..., DockerRuntime], new_lease: Callable[..., Lease]
) -> None:
    lease = new_lease()
    runtime = make_runtime()
    handle = runtime.start(lease.spec)
    with pytest.raises(ContainerStartError) as caught:
        runtime.wait_ready(handle, port=lease.spec.port, timeout=timedelta(milliseconds=1))
    assert "did not answer within" in caught.value.message
    assert f":{lease.spec.port}/login" in (caught.value.detail or "")
    runtime.stop(lease.spec.lease_id)


def test_the_terminal_login_shell_finds_jupyters_python(
    running: Lease, docker_client: docker.DockerClient
) -> None:
    container = docker_client.containers.get(f"gpubot-{running.spec.lease_id}")
    # Jupyter terminals run `$SHELL -l`; /etc/profile resets PATH, the image puts it back.
    code, out = container.exec_run(
        ["bash", "-lc", "echo $SHELL; command -v python; python -c 'import pandas, matplotlib'"]
    )
    assert code == 0, out
    shell, python = out.decode().split()[:2]
    assert shell == "/bin/bash"
    assert python in {"/opt/venv/bin/python", "/opt/conda/bin/python"}
    code, out = container.exec_run(
        ["/usr/local/bin/gpubot-python", "/usr/local/share/gpubot/healthcheck.py"]
    )
    assert code == 0, out


def test_conda_activate_works_in_terminals_on_a_conda_base(
    make_runtime: Callable[..., DockerRuntime],
    new_lease: Callable[..., Lease],
    docker_client: docker.DockerClient,
) -> None:
    eng.require_image(docker_client, eng.TEST_CONDA_IMAGE)
    lease = new_lease()
    runtime = make_runtime(image=eng.TEST_CONDA_IMAGE)
    handle = runtime.start(lease.spec)
    runtime.wait_ready(handle, port=lease.spec.port, timeout=READY)
    container = docker_client.containers.get(handle.container_id)
    script = (
        "type conda | head -n 1; echo env=$CONDA_DEFAULT_ENV; "
        "conda activate myenv; echo env=$CONDA_DEFAULT_ENV; command -v jupyter"
    )
    # A Jupyter terminal is `bash -l`; an interactive bash in it must work too.
    for shell in (["bash", "-lc"], ["bash", "-ic"]):
        code, out = container.exec_run([*shell, script])
        lines = [line for line in out.decode().splitlines() if not line.startswith("bash: ")]
        assert code == 0, out
        assert lines == [
            "conda is a function",
            "env=base",
            "env=myenv",
            "/opt/conda/bin/jupyter",
        ], shell
