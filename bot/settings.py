"""Configuration, from the environment and ``.env`` in the working directory.

Read once, in the composition root (``bot.main``), never at import time. Every field is
documented in ``.env.example`` with its default. ``load_settings`` turns a validation
error into one line naming the setting (``SettingsError``), so start-up never shows a
traceback for a typo.
"""

from __future__ import annotations

import socket
from datetime import timedelta
from ipaddress import IPv4Network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.domain.durations import LONGEST, parse_duration
from bot.domain.environments import Environment, parse_environments
from bot.domain.errors import InvalidDuration
from bot.domain.sizes import parse_size

DEFAULT_IMAGE = "gpubot-jupyter:latest"


class SettingsError(Exception):
    """A setting is missing or malformed. ``str()`` is one line naming the setting."""


def _duration(value: Any) -> timedelta:
    """Lease notation (``90m``, ``1d12h``); settings also take seconds (``45s``)."""
    if isinstance(value, timedelta):
        return value
    text = str(value).strip().lower()
    if text.endswith("s") and text[:-1].isascii() and text[:-1].isdigit():
        if int(text[:-1]) > LONGEST.total_seconds():  # timedelta() would overflow
            raise ValueError(f"{text} is longer than 10 years")
        return timedelta(seconds=int(text[:-1]))
    try:
        return parse_duration(text)
    except InvalidDuration as exc:
        raise ValueError(exc.message) from None


def _csv(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(part.strip() for part in str(value or "").split(",") if part.strip())


def _durations(value: Any) -> tuple[timedelta, ...]:
    items = value if isinstance(value, (list, tuple)) else _csv(value)
    return tuple(sorted((_duration(v) for v in items), reverse=True))


def _size(value: Any) -> str:
    parse_size(str(value))  # raises ValueError with a clear message
    return str(value).strip().lower()


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Csv = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_csv)]
Durations = Annotated[tuple[timedelta, ...], NoDecode, BeforeValidator(_durations)]
Size = Annotated[str, BeforeValidator(_size)]
OptionalSize = Annotated[str, BeforeValidator(lambda v: _size(v) if str(v).strip() else "")]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # Slack
    slack_bot_token: str | None = Field(None, alias="SLACK_BOT_TOKEN", repr=False)
    slack_app_token: str | None = Field(None, alias="SLACK_APP_TOKEN", repr=False)
    slack_signing_secret: str | None = Field(None, alias="SLACK_SIGNING_SECRET", repr=False)
    slack_api_url: str = Field("https://slack.com/api/", alias="SLACK_API_URL")
    http_port: int = Field(3000, alias="GPUBOT_HTTP_PORT", ge=1, le=65535)
    # HTTP mode listens here; Slack calls only HTTPS URLs, so a TLS proxy on this host
    # forwards to it (0.0.0.0 only when that proxy runs elsewhere).
    http_address: str = Field("127.0.0.1", alias="GPUBOT_HTTP_ADDRESS", min_length=1)

    # Storage and secrets
    database_url: str = Field("sqlite:///gpubot.db", alias="DATABASE_URL")
    secret_key: Csv = Field((), alias="GPUBOT_SECRET_KEY", repr=False)
    key_file: Path | None = Field(None, alias="GPUBOT_KEY_FILE")

    # GPUs and host
    fake_gpus: int = Field(0, alias="GPUBOT_FAKE_GPUS", ge=0, le=1024)
    host_name: str = Field(default_factory=socket.gethostname, alias="GPUBOT_HOST_NAME")
    gpu_busy_memory_mib: int = Field(1024, alias="GPUBOT_GPU_BUSY_MEMORY_MIB", ge=0)

    # Containers
    image: str = Field(DEFAULT_IMAGE, alias="GPUBOT_IMAGE")
    pull_missing_image: bool = Field(True, alias="GPUBOT_PULL_MISSING_IMAGE")
    workspace_root: Path = Field(Path("/srv/gpubot/workspaces"), alias="GPUBOT_WORKSPACE_ROOT")
    public_host: str = Field(default_factory=socket.getfqdn, alias="GPUBOT_PUBLIC_HOST")
    bind_address: str = Field("0.0.0.0", alias="GPUBOT_BIND_ADDRESS")
    port_range: str = Field("8800-8899", alias="GPUBOT_PORT_RANGE")
    uid_range: str = Field("200000-209999", alias="GPUBOT_UID_RANGE")
    mem_limit: Size = Field("96g", alias="GPUBOT_MEM_LIMIT")
    cpus: float = Field(11.0, alias="GPUBOT_CPUS", gt=0, le=1024)
    shm_size: Size = Field("8g", alias="GPUBOT_SHM_SIZE")
    pids_limit: int = Field(4096, alias="GPUBOT_PIDS_LIMIT", ge=64)
    # Issue 11.14/16: lease isolation and disk bounds (bot/adapters/docker_network.py,
    # docker_firewall.py, docker_create.py).
    block_host_access: bool = Field(True, alias="GPUBOT_BLOCK_HOST_ACCESS")
    lease_subnets: IPv4Network = Field(IPv4Network("172.30.0.0/16"), alias="GPUBOT_LEASE_SUBNETS")
    rootfs_size: OptionalSize = Field("", alias="GPUBOT_ROOTFS_SIZE")
    log_max_size: Size = Field("10m", alias="GPUBOT_LOG_MAX_SIZE")
    log_max_files: int = Field(3, alias="GPUBOT_LOG_MAX_FILES", ge=1, le=100)
    ready_timeout: Duration = Field(timedelta(minutes=3), alias="GPUBOT_READY_TIMEOUT")

    # Lease policy
    min_lease: Duration = Field(timedelta(minutes=15), alias="GPUBOT_MIN_LEASE")
    max_lease: Duration = Field(timedelta(days=7), alias="GPUBOT_MAX_LEASE")
    default_lease: Duration = Field(timedelta(hours=24), alias="GPUBOT_DEFAULT_LEASE")
    approval_above: Duration = Field(timedelta(days=3), alias="GPUBOT_APPROVAL_ABOVE")
    max_leases_per_user: int = Field(2, alias="GPUBOT_MAX_LEASES_PER_USER", ge=1)
    approval_timeout: Duration = Field(timedelta(hours=24), alias="GPUBOT_APPROVAL_TIMEOUT")
    admins: Csv = Field((), alias="GPUBOT_ADMINS")
    admin_channel: str | None = Field(None, alias="GPUBOT_ADMIN_CHANNEL")

    # Scheduler
    remind_before: Durations = Field(
        (timedelta(hours=1), timedelta(minutes=10)), alias="GPUBOT_REMIND_BEFORE"
    )
    tick_seconds: float = Field(30.0, alias="GPUBOT_TICK_SECONDS", gt=0, le=3600)
    reconcile_seconds: float = Field(60.0, alias="GPUBOT_RECONCILE_SECONDS", gt=0, le=3600)
    starting_grace: Duration = Field(timedelta(minutes=10), alias="GPUBOT_STARTING_GRACE")
    effect_retry_after: Duration = Field(timedelta(minutes=10), alias="GPUBOT_EFFECT_RETRY_AFTER")
    # Growth: acknowledged effects, and the rest of the audit trail, are deleted after
    # these (the ``prune`` job); an effect never acknowledged is kept
    effect_retention: Duration = Field(timedelta(days=7), alias="GPUBOT_EFFECT_RETENTION")
    audit_retention: Duration = Field(timedelta(days=365), alias="GPUBOT_AUDIT_RETENTION")

    # Contention (DESIGN §4.1): the queue and idle reclaim
    queue_timeout: Duration = Field(timedelta(hours=24), alias="GPUBOT_QUEUE_TIMEOUT")
    queue_reserve_after: Duration = Field(timedelta(hours=1),
                                          alias="GPUBOT_QUEUE_RESERVE_AFTER")
    idle_util_percent: int = Field(5, alias="GPUBOT_IDLE_UTIL_PERCENT", ge=0, le=100)
    idle_warn_after: Duration = Field(timedelta(hours=1), alias="GPUBOT_IDLE_WARN_AFTER")
    idle_reclaim_after: Duration = Field(timedelta(hours=2), alias="GPUBOT_IDLE_RECLAIM_AFTER")
    idle_snooze: Duration = Field(timedelta(hours=2), alias="GPUBOT_IDLE_SNOOZE")

    # Usage (issue 12.3, 12.4): per-GPU-day rows older than this are pruned (about 190
    # bytes a GPU-day: bot/db/usage.py); when the weekly report goes to the admin channel
    usage_retention: Duration = Field(timedelta(days=400), alias="GPUBOT_USAGE_RETENTION")
    report_schedule: str = Field("mon 09:00", alias="GPUBOT_REPORT_SCHEDULE")

    # The engine leases run on (DESIGN §4.1): this host's Docker, or a Slurm cluster
    engine: Literal["docker", "slurm"] = Field("docker", alias="GPUBOT_ENGINE")
    slurm_url: str = Field("http://127.0.0.1:6820", alias="GPUBOT_SLURM_URL")
    slurm_token_file: Path = Field(Path("/etc/gpubot/slurm.jwt"),
                                   alias="GPUBOT_SLURM_TOKEN_FILE")
    slurm_user: str = Field("gpubot", alias="GPUBOT_SLURM_USER")
    slurm_partition: str = Field("gpu", alias="GPUBOT_SLURM_PARTITION")
    slurm_gpu_type: str = Field("", alias="GPUBOT_SLURM_GPU_TYPE")
    slurm_env_root: Path = Field(Path("/srv/gpubot/envs"), alias="GPUBOT_SLURM_ENV_ROOT")
    slurm_state_root: Path = Field(Path("/srv/gpubot/state"), alias="GPUBOT_SLURM_STATE_ROOT")
    slurm_grace: Duration = Field(timedelta(hours=1), alias="GPUBOT_SLURM_GRACE")
    # jobs as each person's own cluster account (bot/adapters/slurm_auth.py): both or neither
    slurm_jwt_key: Path | None = Field(None, alias="GPUBOT_SLURM_JWT_KEY")
    slurm_accounts: Path | None = Field(None, alias="GPUBOT_SLURM_ACCOUNTS")

    log_level: str = Field("INFO", alias="GPUBOT_LOG_LEVEL")

    # SSH (DESIGN §4.1, issue 13.2): each lease also gets an SSH port (keys only)
    ssh: bool = Field(False, alias="GPUBOT_SSH")

    # Operations: Prometheus /metrics on address:port; unset = off
    metrics_address: str | None = Field(None, alias="GPUBOT_METRICS_ADDRESS")

    # Access (DESIGN §4.1, issue 13): environments; HTTPS per lease through Caddy
    environments_spec: str = Field("", alias="GPUBOT_ENVIRONMENTS")
    proxy: str = Field("none", alias="GPUBOT_PROXY")
    proxy_admin_url: str = Field("http://127.0.0.1:2019", alias="GPUBOT_PROXY_ADMIN_URL")
    public_domain: str | None = Field(None, alias="GPUBOT_PUBLIC_DOMAIN")
    proxy_listen: str = Field("0.0.0.0:443", alias="GPUBOT_PROXY_LISTEN")
    tls_cert: Path | None = Field(None, alias="GPUBOT_TLS_CERT")
    tls_key: Path | None = Field(None, alias="GPUBOT_TLS_KEY")

    @field_validator("metrics_address")
    @classmethod
    def _check_metrics_address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_listen_address(value)
        return value.strip()

    @field_validator("effect_retention", "audit_retention")
    @classmethod
    def _check_retention(cls, value: timedelta) -> timedelta:
        if value < timedelta(days=1):  # recent audit rows are still read (recoveries)
            raise ValueError("keep rows at least a day, e.g. 7d")
        return value

    @field_validator("usage_retention")
    @classmethod
    def _check_usage_retention(cls, value: timedelta) -> timedelta:
        if value < timedelta(days=31):  # /gpu usage reads 30 days back
            raise ValueError("keep the GPU-days at least 31 days, e.g. 400d")
        return value

    @field_validator("report_schedule")
    @classmethod
    def _check_report_schedule(cls, value: str) -> str:
        parse_schedule(value)
        return " ".join(value.lower().split())

    @field_validator("port_range")
    @classmethod
    def _check_port_range(cls, value: str) -> str:
        parse_port_range(value)
        return value.strip()

    @field_validator("uid_range")
    @classmethod
    def _check_uid_range(cls, value: str) -> str:
        parse_uid_range(value)
        return value.strip()

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        try:
            make_url(value)
        except ArgumentError:
            raise ValueError("not a SQLAlchemy URL (e.g. sqlite:///gpubot.db or "
                             "postgresql+psycopg://user@host/db)") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("use DEBUG, INFO, WARNING or ERROR")
        return level

    @field_validator("proxy")
    @classmethod
    def _check_proxy(cls, value: str) -> str:
        if value.strip().lower() not in {"none", "caddy"}:
            raise ValueError("use none (direct ports, LAN only) or caddy (HTTPS)")
        return value.strip().lower()

    @field_validator("proxy_listen")
    @classmethod
    def _check_proxy_listen(cls, value: str) -> str:
        parse_listen_address(value)
        return value.strip()

    @model_validator(mode="after")
    def _check_access(self) -> Settings:
        try:
            parse_environments(self.environments_spec, self.image)
        except ValueError as exc:
            raise ValueError(f"GPUBOT_ENVIRONMENTS: {exc}") from None
        if self.proxy == "caddy" and not (self.public_domain or "").strip(". "):
            raise ValueError("GPUBOT_PROXY=caddy needs GPUBOT_PUBLIC_DOMAIN (each lease "
                             "gets a host name under it)")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set both GPUBOT_TLS_CERT and GPUBOT_TLS_KEY, or neither")
        if (self.slurm_jwt_key is None) != (self.slurm_accounts is None):
            raise ValueError("jobs run as each person's cluster account with both "
                             "GPUBOT_SLURM_JWT_KEY and GPUBOT_SLURM_ACCOUNTS set; set neither "
                             "to run every job as GPUBOT_SLURM_USER")
        return self

    @property
    def environments(self) -> tuple[Environment, ...]:
        return parse_environments(self.environments_spec, self.image)

    @property
    def domain(self) -> str | None:
        """GPUBOT_PUBLIC_DOMAIN when the proxy is on, else None (direct ports)."""
        return (self.public_domain or "").strip(". ").lower() or None \
            if self.proxy == "caddy" else None

    @model_validator(mode="after")
    def _check_lease_bounds(self) -> Settings:
        if self.min_lease > self.max_lease:
            raise ValueError("GPUBOT_MIN_LEASE is longer than GPUBOT_MAX_LEASE")
        if not self.min_lease <= self.default_lease <= self.max_lease:
            raise ValueError("GPUBOT_DEFAULT_LEASE must lie between GPUBOT_MIN_LEASE "
                             "and GPUBOT_MAX_LEASE")
        return self

    @property
    def ports(self) -> tuple[int, int]:
        return parse_port_range(self.port_range)

    @property
    def uids(self) -> tuple[int, int]:
        return parse_uid_range(self.uid_range)

    @property
    def report_at(self) -> tuple[str, int, int] | None:
        """GPUBOT_REPORT_SCHEDULE as (cron day_of_week, hour, minute), in UTC; None: off."""
        return parse_schedule(self.report_schedule)

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)


def parse_listen_address(text: str) -> tuple[str, int]:
    """``address:port`` (``127.0.0.1:9464``, ``[::1]:9464``; ``:9464`` = every address)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("expected ADDRESS:PORT, e.g. 127.0.0.1:9464")
    host = host.removeprefix("[").removesuffix("]")
    return host or "0.0.0.0", int(port)


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_schedule(text: str) -> tuple[str, int, int] | None:
    """``mon 09:00``, ``mon,thu 09:00`` or ``daily 18:30`` (UTC) as APScheduler's cron
    (day_of_week, hour, minute); ``off`` (or empty): None."""
    words = text.strip().lower().split()
    if not words or words == ["off"]:
        return None
    days, clock = (words + [""])[:2]
    hour, sep, minute = clock.partition(":")
    days_ok = days == "daily" or all(d in _DAYS for d in days.split(","))
    if len(words) != 2 or not days_ok or not sep or not (hour.isdigit() and minute.isdigit()) \
            or int(hour) > 23 or int(minute) > 59 or len(minute) != 2:
        raise ValueError("expected DAYS HH:MM in UTC, e.g. `mon 09:00`, `mon,thu 09:00`, "
                         "`daily 18:30`, or `off`")
    return ("*" if days == "daily" else days), int(hour), int(minute)


def parse_port_range(text: str) -> tuple[int, int]:
    parts = text.strip().split("-")
    try:
        low, high = (int(p) for p in parts) if len(parts) == 2 else (int(parts[0]),) * 2
    except ValueError:
        raise ValueError("expected LOW-HIGH, e.g. 8800-8899") from None
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"{text!r} is not a range of ports from low to high within 1-65535")
    return low, high


def parse_uid_range(text: str) -> tuple[int, int]:
    """Host uids for people: above the system's and the usual login users' (< 1000s)."""
    parts = text.strip().split("-")
    try:
        low, high = (int(p) for p in parts)
    except ValueError:
        raise ValueError("expected LOW-HIGH, e.g. 200000-209999") from None
    if not 1000 < low <= high < 2**31 - 1:
        raise ValueError(f"{text!r} is not a range of uids from low to high above 1000")
    return low, high


def load_settings(**overrides: Any) -> Settings:
    """Build settings, or raise SettingsError with one line that names the setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err["loc"][0] if err["loc"] else None
        field = Settings.model_fields.get(str(loc)) if loc else None
        name = (field.alias if field and field.alias else loc) or "settings"
        msg = str(err["msg"]).removeprefix("Value error, ")
        value = err.get("input")
        shown = f" (got {value!r})" if field is not None and field.repr is not False else ""
        raise SettingsError(f"Invalid setting {name}: {msg}{shown}") from None
