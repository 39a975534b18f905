"""Tables, and the mapping of the domain's ``Lease`` onto them.

No double allocation is the database's job: a GPU is held by a row in
``gpu_allocations`` (primary key: the GPU UUID) and a port by a row in
``port_allocations`` (primary key: host + port). These rows exist exactly while their
lease is live and are written in the same transaction as the lease's status, so two
grants racing for one GPU or port cannot both commit, whatever Python believed.
"""

from __future__ import annotations

import threading

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import registry

from bot.db.types import CsvTuple, Seconds, UtcDateTime
from bot.domain.lease import Lease, LeaseStatus

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

users = Table(
    "users", metadata,
    Column("id", String(32), primary_key=True),  # Slack user id
    Column("created_at", UtcDateTime(), nullable=False),
    Column("uid", Integer, unique=True),  # host uid/gid of this person's containers and files
)

leases = Table(
    "leases", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("status", Enum(LeaseStatus, native_enum=False, length=20,
                          values_callable=lambda e: [m.value for m in e],
                          validate_strings=True), nullable=False),
    Column("duration_s", Seconds(), nullable=False),
    Column("gpu_count", Integer, nullable=False, default=1),
    Column("gpu_model", String(64)),
    Column("host", String(255)),
    Column("gpu_uuids", CsvTuple(), nullable=False, default=""),
    Column("port", Integer),
    Column("container_id", String(80)),
    Column("container_name", String(80)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime()),
    Column("expires_at", UtcDateTime()),
    Column("ended_at", UtcDateTime()),
    Column("password_token", Text),
    Column("reminders_sent", String(255), nullable=False, default=""),
    Column("decision_by", String(32)),
    Column("decision_reason", Text),
    Column("failure_reason", Text),
    Column("channel_id", String(32)),
    Column("queued_at", UtcDateTime()),  # when it joined the line (queued leases)
    Column("heartbeat_at", UtcDateTime()),  # a start in progress is alive
    Column("idle_since", UtcDateTime()),  # its GPUs idle and Jupyter quiet since
    Column("idle_warned_at", UtcDateTime()),
    Column("snoozed_until", UtcDateTime()),  # "I'm still using it"
    Column("util_sum", Integer, nullable=False, default=0),  # GPU utilization samples
    Column("util_samples", Integer, nullable=False, default=0),
    Column("util_peak", Integer, nullable=False, default=0),
    Column("mem_peak_mib", Integer, nullable=False, default=0),
    Column("idle_samples", Integer, nullable=False, default=0),
    Column("idle_exempt", Boolean, nullable=False, default=False),  # an admin said so
    Column("end_reason", String(40)),  # why it ended, for people and receipts
    Column("environment", String(64)),  # GPUBOT_ENVIRONMENTS name; None: the default
    Column("route_label", String(64)),  # its proxy host label (random, not the lease id)
    Column("address", String(255)),  # its Jupyter's host when not this one (a Slurm node)
    Column("ssh_port", Integer),
    Column("host_key_fingerprint", String(128)),  # its sshd's, shown in the access DM
    Index("ix_leases_status_expires_at", "status", "expires_at"),
    Index("ix_leases_user_id_status", "user_id", "status"),
)

gpu_allocations = Table(
    "gpu_allocations", metadata,
    Column("gpu_uuid", String(96), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("lease_id", Integer, ForeignKey("leases.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("allocated_at", UtcDateTime(), nullable=False),
)

port_allocations = Table(
    "port_allocations", metadata,
    Column("host", String(255), primary_key=True),
    Column("port", Integer, primary_key=True),
    Column("lease_id", Integer, ForeignKey("leases.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("allocated_at", UtcDateTime(), nullable=False),
)

gpu_usage = Table(  # for "least recently leased first"
    "gpu_usage", metadata,
    Column("gpu_uuid", String(96), primary_key=True),
    Column("last_leased_at", UtcDateTime(), nullable=False),
)

ssh_keys = Table(  # OpenSSH public keys a user's leases accept
    "ssh_keys", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False, index=True),
    Column("public_key", Text, nullable=False),
    Column("fingerprint", String(128), nullable=False),
    Column("comment", String(255)),
    Column("added_at", UtcDateTime(), nullable=False),
)

gpu_daily = Table(  # the weekly chart: one row per GPU and UTC day, whatever the tick
    "gpu_daily", metadata,
    Column("gpu_uuid", String(96), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("host", String(255), nullable=False),
    Column("samples", Integer, nullable=False),
    Column("util_sum", Integer, nullable=False),
    Column("leased_samples", Integer, nullable=False),
)

port_usage = Table(  # for "least recently used port first"
    "port_usage", metadata,
    Column("host", String(255), primary_key=True),
    Column("port", Integer, primary_key=True),
    Column("last_used_at", UtcDateTime(), nullable=False),
)

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False, index=True),
    Column("actor", String(32), nullable=False),  # Slack user id, or "system"
    Column("action", String(40), nullable=False),
    Column("lease_id", Integer, ForeignKey("leases.id", ondelete="SET NULL"), index=True),
    Column("detail", Text),
)

mapper_registry = registry(metadata=metadata)
_mapped = False
_mapping = threading.Lock()


def map_domain() -> None:
    """Map the domain's Lease dataclass onto ``leases`` (imperative mapping keeps the
    domain free of SQLAlchemy). Idempotent, and safe when several threads open their
    first Database at once (two mappings of one class would fail)."""
    global _mapped
    with _mapping:
        if not _mapped:
            mapper_registry.map_imperatively(Lease, leases,
                                             properties={"duration": leases.c.duration_s})
            _mapped = True
