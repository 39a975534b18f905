"""``gpubot console``, and what ``scripts/serve`` runs.

``run_console``: migrate, reach NVML and Docker, build the graph with the terminal as
the chat (``bootstrap.build_console``), run the scheduler and the Docker event watcher
beside it, and stop them cleanly when the console ends (Ctrl-D, ``:quit``). Logs go to
a file so the terminal stays the chat.

``start`` (``scripts/serve``): with any Slack credential set it is ``gpubot serve``,
unchanged. Without, one line says so and the console runs on embedded defaults: SQLite,
workspaces and logs in the working directory; synthetic GPUs where NVML is missing;
without a Docker engine, how to get one and what works meanwhile.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bot import logs
from bot.bootstrap import (
    StartupError,
    build_console,
    engine_unreachable,
    make_inventory,
    make_runtime,
)
from bot.db import migrate
from bot.domain.errors import GpuBackendUnavailable
from bot.ports import ContainerRuntime, GpuInventory
from bot.settings import Settings

log = logging.getLogger("gpubot")
USER_ID = re.compile(r"[A-Z0-9]{1,32}")  # Slack's user id alphabet; a workspace folder name
EMBEDDED_GPUS = 2
LOG_FILE = "gpubot-console.log"
HISTORY = Path.home() / ".gpubot_history"


def default_user() -> str:
    """``U`` and the login name in Slack's alphabet, e.g. ``UALICE``."""
    name = re.sub(r"[^A-Z0-9]", "", getpass.getuser().upper())[:20]
    return f"U{name or 'CONSOLE'}"


def run_console(settings: Settings, *, users: list[str] | None = None, admin: bool = False,
                embedded: bool = False, out: Any = None, read: Any = None) -> None:
    """The console until Ctrl-D or ``:quit``. ``admin``: the first user is an admin in
    this process. Raises StartupError (one line) when it cannot start."""
    people = [u.strip().upper() for u in users or [] if u.strip()] or [default_user()]
    bad = [u for u in people if not USER_ID.fullmatch(u)]
    if bad:
        raise StartupError(f"--user {bad[0]}: a user id has only letters and digits "
                           f"(e.g. U0ALICE).")
    if admin and people[0] not in settings.admins:
        settings = settings.model_copy(update={"admins": (*settings.admins, people[0])})
    notes: list[str] = []
    if embedded:
        settings = embedded_settings(settings)
    log_file = _log_to_file(settings)
    try:
        migrate.upgrade(settings.database_url)
    except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback
        raise StartupError(f"Cannot migrate the database at DATABASE_URL: "
                           f"{str(exc).splitlines()[0]}") from None
    settings, inventory = _inventory(settings, embedded, notes)
    runtime = _runtime(settings, embedded, notes)
    bot = build_console(settings, users=people, inventory=inventory, runtime=runtime, out=out,
                        history=HISTORY, read=read)
    banner = _banner(settings, log_file, notes)
    stop = threading.Event()
    # SIGTERM ends the console as Ctrl-D does (the finally blocks stop the scheduler)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    scheduler = bot.gpubot.scheduler()
    scheduler.start()
    watcher = threading.Thread(target=runtime.watch_events, name="gpubot-docker-events",
                               kwargs={"on_event": bot.gpubot.lifecycle.on_container_event,
                                       "stop": stop}, daemon=True)
    watcher.start()
    try:
        bot.console.loop(banner)
    finally:
        scheduler.shutdown(wait=True)
        stop.set()
        watcher.join(timeout=2)
        bot.gpubot.db.dispose()
        bot.console.screen.show("Scheduler stopped. Leases keep running; `gpubot console` "
                                "or `gpubot serve` carries on with them.")


def start(settings: Settings) -> None:
    """What ``scripts/serve`` runs."""
    from bot.serve import _check_slack, run

    if settings.slack_bot_token or settings.slack_app_token or settings.slack_signing_secret:
        run(settings)  # with tokens nothing changes
        return
    if not sys.stdin.isatty():  # a service manager, not a person: say what is missing
        _check_slack(settings)
    print("No Slack tokens (SLACK_BOT_TOKEN is not set): starting the console, the same bot "
          "with this terminal as the chat (.env.example says how to connect Slack).",
          flush=True)
    run_console(settings, admin=True, embedded=True)


# ---------------------------------------------------------------- defaults
def embedded_settings(settings: Settings) -> Settings:
    """Working-directory defaults for what the environment leaves unset."""
    given, changes = settings.model_fields_set, {}
    if "workspace_root" not in given:
        changes["workspace_root"] = Path("workspaces").resolve()
    cores = float(os.cpu_count() or 1)
    if "cpus" not in given and settings.cpus > cores:  # Docker refuses more than the host has
        changes["cpus"] = cores
    return settings.model_copy(update=changes)


def _inventory(settings: Settings, embedded: bool, notes: list[str]
               ) -> tuple[Settings, GpuInventory]:
    try:
        return settings, make_inventory(settings)
    except GpuBackendUnavailable as exc:
        if not embedded:
            raise StartupError(f"{exc.message} Without NVIDIA GPUs, GPUBOT_FAKE_GPUS=2 gives "
                               f"synthetic ones (or run scripts/serve).") from None
        notes.append(f"No NVML here ({exc.message.rstrip('.')}): offering {EMBEDDED_GPUS} "
                     f"synthetic GPUs (GPUBOT_FAKE_GPUS={EMBEDDED_GPUS}); set GPUBOT_FAKE_GPUS "
                     f"to choose how many.")
        settings = settings.model_copy(update={"fake_gpus": EMBEDDED_GPUS})
        return settings, make_inventory(settings)


def _runtime(settings: Settings, embedded: bool, notes: list[str]) -> ContainerRuntime:
    try:
        return make_runtime(settings)
    except Exception as exc:  # noqa: BLE001 - docker.errors.DockerException and friends
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not embedded:
            raise engine_unreachable(exc, settings.engine) from None
    from bot.adapters.no_engine import HOW_TO_GET_ONE, NoEngine

    notes.append(f"No Docker engine reachable ({reason}). To get one: {HOW_TO_GET_ONE}. "
                 f"Meanwhile help, status, mine and approvals work; a claim is granted and "
                 f"then fails to start.")
    return NoEngine(reason)


def _banner(settings: Settings, log_file: Path, notes: list[str]) -> list[str]:
    url = make_url(settings.database_url).render_as_string(hide_password=True)
    lines = ["gpubot console: the same bot as in Slack, with this terminal as the chat. "
             "`help` lists the bot's commands, `:help` the console's.",
             f"Database {url}; workspaces in {settings.workspace_root}; log in {log_file}."]
    if settings.fake_gpus:
        lines.append(f"!! SYNTHETIC GPUs: {settings.fake_gpus} made-up GPUs "
                     f"(GPUBOT_FAKE_GPUS={settings.fake_gpus}), not NVML; containers get no GPU.")
    return lines + [f"!! {note}" for note in notes]


def _log_to_file(settings: Settings) -> Path:
    """Redacted logs (``bot.logs``) to a file: the terminal is the chat."""
    logs.configure(settings.log_level, secrets=[settings.slack_signing_secret,
                                                *settings.secret_key])
    path = Path(LOG_FILE).resolve()
    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(root.handlers[0].formatter)
    root.handlers[:] = [handler]
    return path
