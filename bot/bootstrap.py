"""The composition root: the one place that reads settings and wires the object graph.

``build`` makes the graph (resources, outbox with its effect kinds, the one lease
ending, the use cases, the lifecycle jobs and the reconciler as peers); any part can be
handed in instead (tests, bench, the CLI's lazy adapters). ``build_slack`` adds the
Slack side for ``gpubot serve``. Nothing else in ``bot/`` imports ``handlers/``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.adapters.jupyter_probe import HttpJupyterProbe
from bot.bootstrap_access import (
    ProxyStartupError,
    make_images,
    make_proxy,
    published_on,
    start_proxy,
)
from bot.bootstrap_settings import (  # noqa: F401 (re-exported: the CLI and tests use them)
    StartupError,
    engine_unreachable,
    key_file_path,
    make_config,
    make_inventory,
    make_policy,
    make_runtime,
    make_vault,
)
from bot.db import migrate
from bot.db.engine import Database
from bot.domain.errors import GpuBackendUnavailable
from bot.domain.policy import Policy
from bot.ports import (
    Clock,
    ContainerRuntime,
    GpuInventory,
    ImageInspector,
    JupyterProbe,
    Notifier,
    Proxy,
    UsageChart,
)
from bot.scheduler import PRUNE_JOB, REPORT_JOB, SAMPLE_JOB, build_scheduler
from bot.security import Vault
from bot.services.approvals import ApprovalService
from bot.services.claim import ClaimService
from bot.services.effects import register_lease_effects, register_start
from bot.services.ending import LeaseEnder
from bot.services.facade import UseCases
from bot.services.grant import Granter
from bot.services.idle import IdleService
from bot.services.keys import KeyService, register_key_effects
from bot.services.leases import LeaseCommands
from bot.services.lifecycle import LifecycleJobs
from bot.services.outbox import Outbox
from bot.services.queue import QueueService
from bot.services.reconcile import Reconciler
from bot.services.resources import LeaseConfig, Resources
from bot.services.usage import UsageService
from bot.settings import Settings

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from bot.adapters.metrics import Metrics


log = logging.getLogger(__name__)


# ------------------------------------------------------------------ the graph
@dataclass(frozen=True)
class Gpubot:
    """The whole object graph, built once."""

    settings: Settings
    resources: Resources
    outbox: Outbox
    ender: LeaseEnder
    use_cases: UseCases
    lifecycle: LifecycleJobs
    reconciler: Reconciler
    metrics: Metrics | None = None  # GPUBOT_METRICS_ADDRESS set (serve only)

    @property
    def claims(self) -> ClaimService:
        return self.use_cases.claims

    @property
    def db(self) -> Database:
        return self.resources.db

    def jobs(self) -> dict[str, Any]:
        """The scheduler's jobs by name (``bot.scheduler.JOB_IDS``)."""
        jobs = {"expire": self.lifecycle.expire, "remind": self.lifecycle.remind,
                "reconcile": self.reconciler.run, PRUNE_JOB: self.prune,
                SAMPLE_JOB: self.use_cases.idle.sample,
                REPORT_JOB: lambda: self.use_cases.usage.post_report() and "sent"}
        return self.metrics.jobs(jobs) if self.metrics else jobs  # timed per run

    def prune(self) -> int:
        """Old audit and outbox rows go (GPUBOT_EFFECT_RETENTION, GPUBOT_AUDIT_RETENTION),
        and old GPU-days (GPUBOT_USAGE_RETENTION)."""
        return (self.outbox.prune(effects_older_than=self.settings.effect_retention,
                                  audit_older_than=self.settings.audit_retention)
                + self.use_cases.usage.prune(older_than=self.settings.usage_retention))

    def scheduler(self) -> BackgroundScheduler:
        return build_scheduler(self.jobs(), self.settings.tick_seconds,
                               reconcile_seconds=self.settings.reconcile_seconds,
                               report_at=self.settings.report_at)


def build(settings: Settings, *, notifier: Notifier, db: Database | None = None,
          inventory: GpuInventory | None = None, runtime: ContainerRuntime | None = None,
          clock: Clock | None = None, vault: Vault | None = None,
          policy: Policy | None = None, config: LeaseConfig | None = None,
          probe: JupyterProbe | None = None, chart: UsageChart | None = None,
          background: bool = True, proxy: Proxy | None = None,
          images: ImageInspector | None = None) -> Gpubot:
    """The graph from ``settings``; every part given is used instead of the real one.
    ``background=False`` runs queue passes in the thread that freed the capacity
    (deterministic tests)."""
    from bot.adapters.chart import MatplotlibChart
    from bot.adapters.clock import SystemClock

    res = Resources(db=db or Database(settings.database_url),
                    inventory=inventory or make_inventory(settings),
                    runtime=runtime or make_runtime(settings), notifier=notifier,
                    clock=clock or SystemClock(), vault=vault or make_vault(settings),
                    policy=policy or make_policy(settings),
                    config=config or make_config(settings),
                    proxy=proxy if proxy is not None else make_proxy(settings),
                    images=images if images is not None else make_images())
    cfg = res.config
    outbox = Outbox(res.db, res.clock, retry_after=cfg.effect_retry_after,
                    horizon=cfg.effect_horizon, batch_size=cfg.batch_size)
    register_lease_effects(outbox, res)
    register_key_effects(outbox, res)
    ender = LeaseEnder(outbox)
    granter = Granter(res)
    queue = QueueService(res, granter, outbox, ender, background=background)
    ender.on_capacity_freed(queue.kick)
    claims = ClaimService(res, granter, outbox, ender, queue)
    register_start(outbox, claims.start)
    lifecycle = LifecycleJobs(res, outbox, ender)
    idle = IdleService(res, probe or HttpJupyterProbe(host=published_on(settings)), outbox,
                       ender, cfg.idle)
    use_cases = UseCases(claims=claims, leases=LeaseCommands(res, ender),
                         approvals=ApprovalService(res, granter, outbox, ender, queue),
                         queue=queue, idle=idle, resources=res,
                         usage=UsageService(res, chart or MatplotlibChart()),
                         keys=KeyService(res, outbox))
    return Gpubot(settings=settings, resources=res, outbox=outbox, ender=ender,
                  use_cases=use_cases, lifecycle=lifecycle,
                  reconciler=Reconciler(res, outbox, claims, lifecycle, ender, queue))


def build_cli(settings: Settings) -> Gpubot:
    """For one-shot admin commands: GPUs, Docker and the key are touched only if the
    command needs them, and nothing is sent to Slack."""
    from bot.adapters.lazy import Lazy
    from bot.adapters.log_notifier import LogNotifier

    return build(settings, notifier=LogNotifier(),
                 inventory=Lazy(lambda: make_inventory(settings)),  # type: ignore[arg-type]
                 runtime=Lazy(lambda: make_runtime(settings)),  # type: ignore[arg-type]
                 vault=Lazy(lambda: make_vault(settings)))  # type: ignore[arg-type]


# -------------------------------------------------------------- the Slack side
@dataclass(frozen=True)
class SlackBot:
    gpubot: Gpubot
    app: Any  # slack_bolt.App


def build_slack(settings: Settings) -> SlackBot:
    """Migrate, reach NVML and Docker, and wire the graph to Slack: ``gpubot serve``.
    Raises StartupError with one line when something is missing."""
    from slack_bolt import App

    from handlers.app import register_all
    from handlers.context import HandlerContext
    from handlers.notifier import SlackNotifier, web_client

    try:
        migrate.upgrade(settings.database_url)
    except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback
        raise StartupError(f"Cannot migrate the database at DATABASE_URL: "
                           f"{str(exc).splitlines()[0]}") from None
    try:
        inventory = make_inventory(settings)
    except GpuBackendUnavailable as exc:
        raise StartupError(exc.message) from None
    try:
        runtime = make_runtime(settings)
    except Exception as exc:  # noqa: BLE001 - docker.errors.DockerException and friends
        raise engine_unreachable(exc, settings.engine) from None

    proxy = serving_proxy(settings)
    metrics = make_metrics(settings)
    client = web_client(settings.slack_bot_token, settings.slack_api_url)
    admin_channel_warning(settings)
    if metrics:  # before Bolt's first call (auth.test); Bolt's per-request clients share it
        metrics.meter_slack(client)
    notifier: Any = SlackNotifier(client, admin_channel=settings.admin_channel,
                                  extend_by=settings.default_lease, gpus=inventory.list_gpus)
    if metrics:
        notifier = metrics.notifier(notifier)  # observes claim -> access DM
    from bot.adapters.chart import MatplotlibChart
    from handlers.report import SlackNames

    gpubot = build(settings, notifier=notifier, inventory=inventory, runtime=runtime,
                   chart=MatplotlibChart(name=SlackNames(client)),  # names, not ids
                   proxy=proxy)
    if metrics:
        gpubot = serve_metrics(settings, metrics, gpubot)
    app = App(client=client, signing_secret=settings.slack_signing_secret or "",
              request_verification_enabled=not settings.socket_mode,
              token_verification_enabled=True)
    register_all(app, HandlerContext(gpubot.use_cases, notifier))
    return SlackBot(gpubot=gpubot, app=app)


def serving_proxy(settings: Settings) -> Proxy | None:
    """GPUBOT_PROXY=caddy, for a bot that serves: Caddy answers (started if need be) and
    serves our domain, else StartupError."""
    proxy = make_proxy(settings)
    if proxy is not None:
        try:
            start_proxy(settings, proxy)
        except ProxyStartupError as exc:
            raise StartupError(str(exc)) from None
    return proxy


def admin_channel_warning(settings: Settings) -> str | None:
    """One warning line when no admin could approve a request: GPUBOT_ADMIN_CHANNEL unset,
    or a channel the bot cannot post in (a line is posted there and deleted). The bot
    still starts; such requests tell their holder at once that nobody can approve them."""
    if not settings.admin_channel:
        problem = "GPUBOT_ADMIN_CHANNEL is not set"
    else:
        from bot.adapters.slack_checks import admin_channel_probe

        ok, detail, fix = admin_channel_probe(settings.slack_bot_token or "",
                                              settings.slack_api_url, settings.admin_channel)
        problem = None if ok else f"{detail} ({fix})"
    if problem:
        log.warning("approvals: %s; requests that need an admin cannot be approved "
                    "(`gpubot doctor` checks this)", problem)
    return problem


# ------------------------------------------------------------------ metrics
def make_metrics(settings: Settings) -> Metrics | None:
    """Prometheus metrics (``bot.adapters.metrics``) when GPUBOT_METRICS_ADDRESS is set."""
    if not settings.metrics_address:
        return None
    from bot.adapters.metrics import Metrics

    return Metrics()


def serve_metrics(settings: Settings, metrics: Metrics, gpubot: Gpubot) -> Gpubot:
    """Gauges read from ``gpubot`` at each scrape, ``/metrics`` served (a daemon thread)
    on GPUBOT_METRICS_ADDRESS, and the graph with its jobs timed."""
    from bot.services.views import GpuState, gpu_table

    res = gpubot.resources
    metrics.watch(db=res.db, gpu_states=lambda: [row.state.value for row in gpu_table(res)],
                  known_gpu_states=[state.value for state in GpuState],
                  effects_pending=gpubot.outbox.pending)
    try:
        metrics.serve(settings.metrics_address or "")
    except OSError as exc:
        raise StartupError(f"Cannot serve metrics on GPUBOT_METRICS_ADDRESS="
                           f"{settings.metrics_address}: {exc.strerror or exc}") from None
    return replace(gpubot, metrics=metrics)


# ------------------------------------------------------------ the console side
@dataclass(frozen=True)
class ConsoleBot:
    gpubot: Gpubot
    console: Any  # handlers.console.Console: loop(banner), screen


def build_console(settings: Settings, *, users: list[str], inventory: GpuInventory,
                  runtime: ContainerRuntime, out: Any = None, history: Path | None = None,
                  read: Any = None) -> ConsoleBot:
    """The graph with the terminal as the chat (``gpubot console``); ``users[0]`` sits at
    the terminal first. ``bot.terminal`` migrates and reaches NVML and Docker first."""
    import sys

    from handlers.console import Console, ConsoleNotifier, Screen

    screen = Screen(out or sys.stdout, user=users[0])
    notifier = ConsoleNotifier(screen, admin_channel=settings.admin_channel,
                               extend_by=settings.default_lease, gpus=inventory.list_gpus,
                               admins=settings.admins)
    gpubot = build(settings, notifier=notifier, inventory=inventory, runtime=runtime,
                   proxy=serving_proxy(settings))
    console = Console(gpubot.use_cases, screen, users=users, history=history,
                      read=read or input)
    return ConsoleBot(gpubot=gpubot, console=console)
