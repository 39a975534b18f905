"""``gpubot serve``: migrate, wire everything, run the scheduler and the Slack app.

Socket Mode when SLACK_APP_TOKEN is set (the usual case for an on-prem server behind a
firewall), else HTTP mode on GPUBOT_HTTP_PORT with Slack's request signatures checked.
Every Web API call, ``apps.connections.open`` included, goes to SLACK_API_URL.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import signal
import threading
from types import FrameType

from bot import logs
from bot.bootstrap import Gpubot, StartupError, build_slack
from bot.settings import Settings

log = logging.getLogger("gpubot")
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def _check_slack(settings: Settings) -> None:
    if not settings.slack_bot_token:
        raise StartupError("SLACK_BOT_TOKEN is not set: put the bot token (xoxb-…) in the "
                           "environment or .env (see .env.example).")
    if not settings.slack_app_token and not settings.slack_signing_secret:
        raise StartupError("Set SLACK_APP_TOKEN (xapp-…, Socket Mode) or "
                           "SLACK_SIGNING_SECRET (HTTP mode).")


def return_freed_memory() -> None:
    """Serve large allocations (argon2's 19 MiB per hash) with mmap so they go back to
    the OS when freed; glibc's per-thread arenas otherwise keep them (docs/benchmarks.md
    has the figures). Same as MALLOC_MMAP_THRESHOLD_=1048576."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def freeze_startup_objects() -> None:
    """Move everything start-up made (modules, mappers, compiled statements) out of the
    cyclic collector's reach: they live as long as the process, and a full collection
    scanning them paused large reconcile ticks (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()


def run(settings: Settings) -> None:
    return_freed_memory()  # before any thread starts
    logs.configure(settings.log_level,
                   secrets=[settings.slack_signing_secret, *settings.secret_key])
    _check_slack(settings)
    slack = build_slack(settings)
    gpubot, app = slack.gpubot, slack.app
    scheduler = gpubot.scheduler()
    freeze_startup_objects()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    scheduler.start()
    watcher = _watch_containers(gpubot, stop)
    try:
        if settings.socket_mode:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            handler = SocketModeHandler(app, settings.slack_app_token)
            handler.connect()
            log.info("gpubot is up (Socket Mode, Slack API at %s)", settings.slack_api_url)
            stop.wait()
            handler.close()
        else:
            from bot.adapters.slack_http import serve_http

            log.info("gpubot is up (HTTP mode on %s:%s)", settings.http_address,
                     settings.http_port)
            serve_http(app, signing_secret=settings.slack_signing_secret or "",
                       address=settings.http_address, port=settings.http_port, stop=stop)
    finally:
        scheduler.shutdown(wait=True)
        watcher.join(timeout=2)
        gpubot.db.dispose()


def _watch_containers(gpubot: Gpubot, stop: threading.Event) -> threading.Thread:
    """Docker events → the lifecycle jobs, so a dead container is reported within
    seconds instead of at the next reconcile."""
    thread = threading.Thread(target=gpubot.resources.runtime.watch_events,
                              kwargs={"on_event": gpubot.lifecycle.on_container_event,
                                      "stop": stop},
                              name="gpubot-docker-events", daemon=True)
    thread.start()
    return thread
