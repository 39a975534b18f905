"""Where the bot reaches a container's Jupyter, and its last lines of output when it
did not come up (helpers of ``bot.adapters.docker``; the probe itself is
``jupyter_probe.http_status``)."""

from __future__ import annotations

from typing import Any

from docker.errors import DockerException

from bot.adapters.docker_state import explain

LOG_LINES = 20


def login_url(bind_address: str, port: int) -> str:
    """Where the bot itself reaches a container published on ``bind_address:port``."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind_address, bind_address)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/login"


def tail_logs(container: Any) -> str:
    """The container's last lines of output, for a start failure's detail."""
    try:
        raw: bytes = container.logs(stdout=True, stderr=True, tail=LOG_LINES)
    except DockerException as exc:
        return f"(logs unavailable: {explain(exc)})"
    return raw.decode("utf-8", errors="replace").strip()
