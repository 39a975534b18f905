"""Median time until a lease's Jupyter answers: DockerRuntime.start + wait_ready versus a
plain `docker run` of the same image, each until GET /login answers 200.

    .venv/bin/python -m tests.infra.measure_start [--runs 10] [--image gpubot-jupyter:test]

Needs the engine and image of tests/infra/setup_docker.sh and build_images.sh. Runs the
two ways alternately, so drift on the host hits both alike; removes its containers.
No GPU device request (gpu_request=False), so both start the same container.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import docker

from bot.adapters.docker import DockerRuntime
from bot.adapters.docker_ready import login_url
from bot.adapters.jupyter_probe import http_status
from bot.ports import ContainerSpec
from bot.security import hash_jupyter_password
from tests.infra.docker_engine import free_port, runtime_config

TIMEOUT = timedelta(seconds=120)


def wait_login(port: int, started: float) -> float:
    url = login_url("127.0.0.1", port)
    while http_status(url, timeout=2.0) != 200:
        if time.monotonic() - started > TIMEOUT.total_seconds():
            raise TimeoutError(url)
        time.sleep(0.05)
    return time.monotonic() - started


def time_runtime(runtime: DockerRuntime, lease_id: int, password_hash: str) -> tuple[float, float]:
    spec = ContainerSpec(
        lease_id=lease_id,
        user_id="UMEASURE",
        gpu_uuids=(),
        port=free_port(),
        password_hash=password_hash,
    )
    began = time.monotonic()
    try:
        handle = runtime.start(spec)
        created = time.monotonic() - began
        runtime.wait_ready(handle, port=spec.port, timeout=TIMEOUT)
        return created, time.monotonic() - began
    finally:
        runtime.stop(lease_id)


def time_docker_run(image: str, password_hash: str) -> float:
    port = free_port()
    name = f"gpubot-measure-{random.randrange(10**9)}"
    began = time.monotonic()
    command = ["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8888"]
    command += ["-e", f"JUPYTER_PASSWORD_HASH={password_hash}", image]
    try:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return wait_login(port, began)
    finally:
        subprocess.run(["docker", "rm", "-f", name], check=False, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--image", default="gpubot-jupyter:test")
    args = parser.parse_args()

    password_hash = hash_jupyter_password("measure-start-password")
    first_lease = 1_900_000_000 + random.randrange(10_000) * 1_000
    with tempfile.TemporaryDirectory(prefix="gpubot-measure-") as root:
        config = runtime_config(
            Path(root), image=args.image, gpu_request=False, ready_poll_interval=0.05
        )
        runtime = DockerRuntime(config, docker.from_env())
        created: list[float] = []
        ready: list[float] = []
        plain: list[float] = []
        for run in range(args.runs):
            c, r = time_runtime(runtime, first_lease + run, password_hash)
            created.append(c)
            ready.append(r)
            plain.append(time_docker_run(args.image, password_hash))
            print(
                f"run {run + 1:2}: runtime start {c:.2f} s, ready {r:.2f} s;"
                f" docker run ready {plain[-1]:.2f} s"
            )

    def summary(values: list[float]) -> str:
        median = statistics.median(values)
        return f"median {median:.2f} s (min {min(values):.2f}, max {max(values):.2f})"

    print(f"\n{args.runs} runs of {args.image}")
    print(f"DockerRuntime.start (create+start)  : {summary(created)}")
    print(f"DockerRuntime.start + wait_ready    : {summary(ready)}")
    print(f"docker run -d until /login answers  : {summary(plain)}")


if __name__ == "__main__":
    main()
