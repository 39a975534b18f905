"""The ``gpubot`` command line: serve, db upgrade, doctor, leases, release."""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from bot.settings import Settings, SettingsError, load_settings

app = typer.Typer(help="gpubot: lease the lab's GPUs as Jupyter environments from Slack.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg="red")  # one line, never wrapped
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        _fail(str(exc))


@app.command()
def serve() -> None:
    """Run the bot (Socket Mode when SLACK_APP_TOKEN is set) with its scheduler."""
    from bot.serve import StartupError, run

    settings = _settings()
    try:
        run(settings)
    except StartupError as exc:
        _fail(str(exc))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    from bot import logs
    from bot.main import upgrade_database

    settings = _settings()
    logs.configure(settings.log_level)
    upgrade_database(settings)
    console.print("database is at the newest schema")


@app.command()
def leases(all_: Annotated[bool, typer.Option("--all", help="Include ended leases.")] = False,
           ) -> None:
    """List open leases (or all, newest first)."""
    from bot.services.views import list_leases

    settings = _settings()
    services = _services(settings)
    now = services.deps.clock.now()
    rows = list_leases(services.deps, include_ended=all_)
    table = Table("lease", "user", "status", "GPUs", "port", "expires (UTC)", "left",
                  title="gpubot leases")
    for row in rows:
        table.add_row(str(row.lease.id), row.lease.user_id, row.lease.status.value,
                      ", ".join(row.gpu_labels) or "-", str(row.lease.port or "-"),
                      row.lease.expires_at.strftime("%Y-%m-%d %H:%M") if row.lease.expires_at
                      else "-", row.time_left(now))
    console.print(table if rows else "no leases")


@app.command()
def release(lease: Annotated[int, typer.Argument(help="Lease id, as in `gpubot leases`.")]) -> None:
    """Release a lease as an admin: its container stops, its workspace stays."""
    from bot.domain.errors import DomainError
    from bot.domain.lease import CLI_ACTOR

    services = _services(_settings())
    try:
        ended = services.manage.release(user_id=CLI_ACTOR, lease_id=lease, as_admin=True)
    except DomainError as exc:
        _fail(exc.message, 1)
    console.print(f"lease {ended.id} released; the workspace of {ended.user_id} is kept")


@app.command()
def doctor(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
           = False) -> None:
    """Check this host: NVML, driver vs image CUDA, Docker, GPU device requests, image,
    workspace root, database, Slack token, port range. Exit 0 only when all pass."""
    from bot.checks import run_doctor

    raise typer.Exit(run_doctor(_settings(), as_json=as_json))


def _services(settings: Settings):  # type: ignore[no-untyped-def]
    """Services for one-shot admin commands: GPUs and Docker are touched only if the
    command needs them, and nothing is sent to Slack."""
    from bot import logs
    from bot.main import build_services, make_inventory, make_runtime, make_vault
    from bot.services.lazy import Lazy
    from bot.services.log_notifier import LogNotifier

    logs.configure("WARNING")
    return build_services(settings, notifier=LogNotifier(),
                          inventory=Lazy(lambda: make_inventory(settings)),  # type: ignore
                          runtime=Lazy(lambda: make_runtime(settings)),  # type: ignore
                          vault=Lazy(lambda: make_vault(settings)))  # type: ignore


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
