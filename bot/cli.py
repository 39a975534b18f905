"""The ``gpubot`` command line: serve, console, db upgrade, doctor, leases, release,
usage."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from bot.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from bot.services.facade import UseCases

app = typer.Typer(help="gpubot: lease the lab's GPUs as Jupyter environments from Slack.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
secrets_app = typer.Typer(help="The key that encrypts stored Jupyter passwords.",
                          no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")
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


@app.command("console")
def console_command(
    user: Annotated[list[str] | None, typer.Option(
        "--user", help="Who types (a Slack-style id, e.g. U0ALICE); repeat for more people, "
                       "`:user` switches. Default: U and your login name.")] = None,
    admin: Annotated[bool, typer.Option(
        "--admin", help="The first user is an admin in this process.")] = False,
) -> None:
    """The same bot with this terminal as the chat: lines are /gpu commands from the
    current user, buttons print as numbered choices; scheduler, Docker and NVML as in
    `serve`."""
    from bot.bootstrap import StartupError
    from bot.terminal import run_console

    settings = _settings()
    try:
        run_console(settings, users=user or [], admin=admin)
    except StartupError as exc:
        _fail(str(exc))


@app.command("start", hidden=True)
def start() -> None:
    """What scripts/serve runs: `serve` with Slack tokens, else the console on embedded
    defaults."""
    from bot.bootstrap import StartupError
    from bot.terminal import start as start_bot

    settings = _settings()
    try:
        start_bot(settings)
    except StartupError as exc:
        _fail(str(exc))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    from bot import logs
    from bot.db import migrate

    settings = _settings()
    logs.configure(settings.log_level)
    migrate.upgrade(settings.database_url)
    console.print("database is at the newest schema")


@app.command()
def leases(all_: Annotated[bool, typer.Option("--all", help="Include ended leases.")] = False,
           ) -> None:
    """List open leases (or all, newest first)."""
    use_cases = _use_cases(_settings())
    now = use_cases.now()
    rows = use_cases.all_leases(include_ended=all_)
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

    use_cases = _use_cases(_settings())
    try:
        ended = use_cases.leases.release(user_id=CLI_ACTOR, lease_id=lease, as_admin=True)
    except DomainError as exc:
        _fail(exc.message, 1)
    console.print(f"lease {ended.id} released; the workspace of {ended.user_id} is kept")


@app.command()
def usage(
    since: Annotated[str, typer.Option("--since", help="How far back: 7d, 30d, 12w.")] = "30d",
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout instead of a table.")]
    = False,
) -> None:
    """GPU-hours and mean GPU utilization per user over the last --since (an admin's view,
    like `/gpu usage`'s lab part)."""
    import csv
    import io

    from bot.domain.durations import format_duration, parse_duration
    from bot.domain.errors import InvalidDuration
    from bot.domain.usage import total

    try:
        window = parse_duration(since)
    except InvalidDuration as exc:
        _fail(f"--since: {exc.message}")
    lines = _use_cases(_settings()).usage.by_user(since=window)
    util = {x.user_id: "" if x.mean_util is None else f"{x.mean_util:.1f}" for x in lines}
    if as_csv:  # machine-readable: no rounding beyond what the figures carry
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["user", "leases", "gpu_hours", "mean_util_percent"])
        writer.writerows([x.user_id, x.leases, f"{x.gpu_hours:.3f}", util[x.user_id]]
                         for x in lines)
        typer.echo(out.getvalue(), nl=False)
        return
    table = Table("user", "leases", "GPU-hours", "mean util %",
                  title=f"gpubot usage, last {format_duration(window)}")
    for x in lines:
        table.add_row(x.user_id, str(x.leases), f"{x.gpu_hours:.1f}", util[x.user_id] or "-")
    lab = total(lines, "all")
    table.add_section()
    table.add_row("all", str(lab.leases), f"{lab.gpu_hours:.1f}",
                  "-" if lab.mean_util is None else f"{lab.mean_util:.1f}")
    console.print(table if lines else f"no leases in the last {format_duration(window)}")


@app.command()
def doctor(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
           = False) -> None:
    """Check this host: NVML, driver vs image CUDA, Docker, GPU device requests, image,
    workspace root, database, Slack token, port range. Exit 0 only when all pass."""
    from bot.checks import run_doctor

    raise typer.Exit(run_doctor(_settings(), as_json=as_json))


@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every stored password under the newest key. Put a new key first in
    GPUBOT_SECRET_KEY (or the key file), keep the old ones after it, restart the bot, run
    this; then the old keys can go."""
    from bot.bootstrap import StartupError, make_vault
    from bot.db.engine import Database
    from bot.db.repo import LeaseRepo
    from bot.security import SecretKeyError

    settings = _settings()
    try:
        vault = make_vault(settings)
    except StartupError as exc:
        _fail(str(exc))
    db = Database(settings.database_url)
    rotated, undecryptable = 0, []
    try:
        with db.transaction() as session:  # one transaction: a crash changes nothing
            repo = LeaseRepo(session)
            for lease_id, token in repo.password_tokens():
                try:
                    fresh = vault.rotate(token)
                except SecretKeyError:
                    undecryptable.append(lease_id)
                    continue
                rotated += repo.replace_password_token(lease_id, old=token, new=fresh)
    finally:
        db.dispose()
    console.print(f"{rotated} stored password(s) now encrypted under the newest key")
    if undecryptable:
        _fail(f"no configured key decrypts the password of lease(s) "
              f"{', '.join(map(str, undecryptable))}: put the key they were made with back "
              f"in GPUBOT_SECRET_KEY and run this again", 1)


def _use_cases(settings: Settings) -> UseCases:
    from bot import logs
    from bot.bootstrap import build_cli

    logs.configure("WARNING")
    return build_cli(settings).use_cases


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
