"""Is Jupyter up? One HTTP probe of its login page (helpers of ``bot.adapters.docker``)."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from docker.errors import DockerException

from bot.adapters.docker_state import explain

LOG_LINES = 20

# Jupyter is on this host: never ask a proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def login_url(bind_address: str, port: int) -> str:
    """Where the bot itself reaches a container published on ``bind_address:port``."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind_address, bind_address)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/login"


def http_status(url: str, *, timeout: float) -> int | str:
    """The HTTP status of GET ``url``, or why there was none (not up yet)."""
    try:
        with _NO_PROXY.open(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:  # refused, reset, timed out
        return str(exc)


def tail_logs(container: Any) -> str:
    """The container's last lines of output, for a start failure's detail."""
    try:
        raw: bytes = container.logs(stdout=True, stderr=True, tail=LOG_LINES)
    except DockerException as exc:
        return f"(logs unavailable: {explain(exc)})"
    return raw.decode("utf-8", errors="replace").strip()
