"""The Docker engine the served-bot figures run on.

The engine that tests/infra/setup_docker.sh starts is shared with every other test
run on this machine, and each ``gpubot serve`` those runs start reconciles at start-up:
it stops every container labelled ``gpubot.lease`` whose lease is not in *its*
database. Bench containers started there get stopped mid-start (seen: "Jupyter stopped
before it was ready (exit code 143)"). So, as root, the bench starts a private dockerd
(own socket, data root, exec root and bridge; no iptables: published ports go through
docker-proxy) and copies the test image into it once (the data root is kept, so later
runs find the image cached). ``GPUBOT_BENCH_DOCKER_HOST`` names an engine to use
instead; without root, or with ``GPUBOT_BENCH_SHARED_ENGINE=1``, the shared engine is
used and the bot's reconciler is scoped to the bench's containers (bench/_scoped_serve).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN = Path("/run/gpubot-bench")
SOCK = f"unix://{RUN}/docker.sock"
PIDFILE = RUN / "docker.pid"
DATA = Path("/var/lib/gpubot-bench-docker")
BRIDGE, BRIDGE_CIDR = "gpubench0", "10.213.7.1/24"
LOG = Path("/tmp/gpubot-bench-dockerd.log")


@dataclass
class Engine:
    client: Any
    host: str | None  # DOCKER_HOST for the bot; None: the default engine
    private: bool  # only the bench's containers live there
    description: str


def _client(host: str | None) -> Any:
    import docker

    client = docker.DockerClient(base_url=host) if host else docker.from_env()
    client.ping()
    return client


def _answers(host: str) -> bool:
    try:
        _client(host).close()
        return True
    except Exception:  # noqa: BLE001
        return False


def _ensure_bridge() -> None:
    shown = subprocess.run(["ip", "link", "show", BRIDGE], check=False, capture_output=True)
    if shown.returncode != 0:
        subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", BRIDGE_CIDR, "dev", BRIDGE], check=True)
    subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)


def _start_dockerd() -> subprocess.Popen[bytes]:
    _ensure_bridge()
    RUN.mkdir(parents=True, exist_ok=True)
    DATA.mkdir(parents=True, exist_ok=True)
    with LOG.open("ab") as log:
        process = subprocess.Popen(
            ["dockerd", f"--host={SOCK}", f"--pidfile={PIDFILE}", f"--data-root={DATA}",
             f"--exec-root={RUN}/exec", f"--bridge={BRIDGE}", "--iptables=false",
             "--ip-masq=false"], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not _answers(SOCK):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"private dockerd did not come up (log: {LOG})")
        time.sleep(0.5)
    return process


def _copy_image(image: str, target: Any, log: Any) -> None:
    source = _client(None)
    want = source.images.get(image).id
    with contextlib.suppress(Exception):  # not there yet
        if target.images.get(image).id == want:
            return
    log(f"  copying {image} into the private engine (once; its data root is kept)")
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    subprocess.run(["docker", "-H", SOCK, "load", "-q"], stdin=save.stdout, check=True,
                   capture_output=True)
    save.stdout.close()  # type: ignore[union-attr]
    if save.wait() != 0:
        raise RuntimeError(f"docker save {image} failed")


@contextmanager
def engine_for_bench(image: str, log: Any = print) -> Iterator[Engine]:
    named = os.environ.get("GPUBOT_BENCH_DOCKER_HOST")
    if named:
        yield Engine(_client(named), named, True, f"{named} (GPUBOT_BENCH_DOCKER_HOST)")
        return
    shared = os.environ.get("GPUBOT_BENCH_SHARED_ENGINE") == "1"
    if shared or os.geteuid() != 0 or not shutil.which("dockerd"):
        why = "GPUBOT_BENCH_SHARED_ENGINE=1" if shared else "not root: no private engine"
        yield Engine(_client(None), None, False, f"the shared default engine ({why})")
        return
    process = None if _answers(SOCK) else _start_dockerd()
    client = _client(SOCK)
    try:
        _copy_image(image, client, log)
        yield Engine(client, SOCK, True, f"a private dockerd on {SOCK} (data root {DATA}, "
                                         f"bridge {BRIDGE}, no iptables)")
    finally:
        client.close()
        if process is not None:  # ours: stop it (the data root stays for next time)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            subprocess.run(["ip", "link", "del", BRIDGE], check=False, capture_output=True)
