"""The composition root's access part (issue 13), called from ``bot.bootstrap``: the
proxy (GPUBOT_PROXY=caddy), the address Jupyter ports are published on, the environments'
image inspector. Reads settings only when called."""

from __future__ import annotations

import atexit
import ipaddress
import logging
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bot.settings import Settings, parse_listen_address

if TYPE_CHECKING:
    from bot.adapters.caddy import CaddyProxy
    from bot.ports import ImageInspector

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"


class ProxyStartupError(Exception):
    """The proxy is configured but cannot be reached or started; one line."""


def published_on(settings: Settings) -> str:
    """Where containers publish Jupyter: with the proxy, loopback only (Caddy on this host
    reaches it; GPUBOT_BIND_ADDRESS gets no Jupyter port); else GPUBOT_BIND_ADDRESS."""
    return LOOPBACK if settings.domain else settings.bind_address


def proxy_port(settings: Settings) -> int:
    return parse_listen_address(settings.proxy_listen)[1]


def make_proxy(settings: Settings) -> CaddyProxy | None:
    if not settings.domain:
        return None
    from bot.adapters.caddy import CaddyProxy

    return CaddyProxy(settings.proxy_admin_url, domain=settings.domain,
                      listen=settings.proxy_listen, tls_cert=settings.tls_cert,
                      tls_key=settings.tls_key)


def make_images() -> ImageInspector:
    from bot.adapters.docker_images import DockerImages

    return DockerImages()


def caddy_state_dir(settings: Settings) -> Path:
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).resolve().with_name("caddy")
    return Path.cwd() / "caddy"


def caddy_root_file(settings: Settings) -> Path:
    """Where the Caddy that `gpubot serve` starts keeps its internal CA's root."""
    return caddy_state_dir(settings) / "data" / "caddy" / "pki" / "authorities" / "local" / \
        "root.crt"


def start_proxy(settings: Settings, proxy: CaddyProxy) -> None:
    """``gpubot serve``: use the Caddy whose admin API answers (deploy's
    gpubot-caddy.service), else start one (its admin API must be on loopback), stopped
    when the bot exits; then make it serve our domain."""
    from bot.adapters.caddy import ProxyError
    from bot.adapters.caddy_process import CaddyProcess, admin_answers

    if not admin_answers(settings.proxy_admin_url):
        host = urlsplit(settings.proxy_admin_url).hostname or ""
        if not is_loopback_host(host):
            raise ProxyStartupError(f"Caddy's admin API at GPUBOT_PROXY_ADMIN_URL="
                                    f"{settings.proxy_admin_url} does not answer; start Caddy "
                                    f"there (deploy/systemd/gpubot-caddy.service)")
        process = CaddyProcess(settings.proxy_admin_url, caddy_state_dir(settings))
        try:
            process.start()
        except RuntimeError as exc:
            raise ProxyStartupError(f"Cannot start Caddy: {exc}") from None
        atexit.register(process.stop)
        log.info("proxy: started Caddy (pid %s); its state is in %s", process.pid,
                 process.state_dir)
    try:
        proxy.ensure_server()
    except ProxyError as exc:
        raise ProxyStartupError(str(exc)) from None


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (an IPv6 one with or without its brackets)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
