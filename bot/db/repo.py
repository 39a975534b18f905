"""Queries and writes the services need, over one Session (one transaction)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.db.tables import (
    audit,
    gpu_allocations,
    gpu_usage,
    leases,
    port_allocations,
    port_usage,
    users,
)
from bot.domain.errors import DomainError, LeaseNotFound
from bot.domain.lease import LIVE, OPEN, Lease, LeaseStatus


class LeaseRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    # ------------------------------------------------------------------ leases
    def add(self, lease: Lease) -> Lease:
        self.s.add(lease)
        self.s.flush()
        return lease

    def get(self, lease_id: int, *, lock: bool = False) -> Lease:
        """``lock``: wait for the row lock and read the row as it is then, also when this
        session read it before (the identity map would keep the old values)."""
        query = select(Lease).where(Lease.id == lease_id)  # type: ignore[arg-type]
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        lease = self.s.scalars(query).one_or_none()
        if lease is None:
            raise LeaseNotFound(f"There is no lease {lease_id}.")
        return lease

    def open_for_user(self, user_id: str) -> list[Lease]:
        return self._where(Lease.user_id == user_id, Lease.status.in_(OPEN))  # type: ignore

    def live(self) -> list[Lease]:
        return self._where(Lease.status.in_(LIVE))  # type: ignore[attr-defined]

    def with_status(self, *statuses: LeaseStatus) -> list[Lease]:
        return self._where(Lease.status.in_(statuses))  # type: ignore[attr-defined]

    def heartbeat(self, lease_id: int, *, now: datetime) -> None:
        """A start in progress is alive: the reconciler leaves it alone."""
        self.s.execute(update(leases).where(leases.c.id == lease_id,
                                            leases.c.status == LeaseStatus.STARTING)
                       .values(heartbeat_at=now))

    def recent(self, *, limit: int = 10) -> list[Lease]:
        """Newest first."""
        query = select(Lease).order_by(Lease.id.desc()).limit(limit)  # type: ignore
        return list(self.s.scalars(query))

    def _where(self, *conditions: object) -> list[Lease]:
        query = select(Lease).where(*conditions).order_by(Lease.id)  # type: ignore
        return list(self.s.scalars(query))

    # ------------------------------------------------------------------- users
    def lock_user(self, user_id: str, *, now: datetime) -> None:
        """Create the user row if needed and lock it, so one person's concurrent
        claims are counted one after the other (per-user limit). One statement: on
        PostgreSQL the upsert's DO UPDATE takes the row lock, also when the row was just
        inserted by a concurrent claim; SQLite's BEGIN IMMEDIATE already runs one writer
        at a time."""
        if self.s.get_bind().dialect.name == "postgresql":
            upsert = pg_insert(users).values(id=user_id, created_at=now)
            self.s.execute(upsert.on_conflict_do_update(
                index_elements=[users.c.id], set_={"id": upsert.excluded.id}))
        else:
            self.s.execute(sqlite_insert(users).values(id=user_id, created_at=now)
                           .on_conflict_do_nothing(index_elements=[users.c.id]))

    def ensure_uid(self, user_id: str, *, low: int, high: int) -> int:
        """This person's own uid (and gid) for containers and files, given on first use
        from [low, high] and kept; call with the user row locked (``lock_user``). The
        unique key refuses a uid given twice; PostgreSQL takes turns here as in grants."""
        uid = self.s.scalar(select(users.c.uid).where(users.c.id == user_id))
        if uid is not None:
            return int(uid)
        if self.s.get_bind().dialect.name == "postgresql":
            self.s.execute(text("SELECT pg_advisory_xact_lock(hashtext('gpubot.uid'))"))
        highest = self.s.scalar(select(func.max(users.c.uid)).where(users.c.uid.between(low, high)))
        uid = low if highest is None else highest + 1
        if uid > high:  # the top is used: the lowest gap, if any
            used = set(self.s.scalars(select(users.c.uid).where(users.c.uid.between(low, high))))
            uid = next((u for u in range(low, high + 1) if u not in used), None)
            if uid is None:
                raise DomainError("Every uid in GPUBOT_UID_RANGE is taken; ask an admin to "
                                  "widen it.")
        self.s.execute(update(users).where(users.c.id == user_id).values(uid=uid))
        return uid

    def uid_of_lease(self, lease_id: int) -> int | None:
        """The uid of the lease's holder (None: a lease from before uids were given)."""
        return self.s.scalar(select(users.c.uid).join(leases, leases.c.user_id == users.c.id)
                             .where(leases.c.id == lease_id))

    # ------------------------------------------------------------- allocations
    def serialize_grants(self, host: str) -> None:
        """Make grants on ``host`` take turns until this transaction ends. Without it,
        simultaneous claims all pick the same free GPU and all but one retry after the
        unique key refuses them (a convoy; docs/benchmarks.md, figure 3). The keys still
        guarantee correctness; this is for speed.
        SQLite needs nothing: BEGIN IMMEDIATE already runs writers one at a time."""
        if self.s.get_bind().dialect.name == "postgresql":
            self.s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                           {"key": f"gpubot.grant:{host}"})

    def taken_gpus(self) -> set[str]:
        return set(self.s.scalars(select(gpu_allocations.c.gpu_uuid)))

    def taken_ports(self, host: str) -> set[int]:
        query = select(port_allocations.c.port).where(port_allocations.c.host == host)
        return set(self.s.scalars(query))

    def last_leased(self, uuids: Iterable[str]) -> dict[str, datetime]:
        query = select(gpu_usage).where(gpu_usage.c.gpu_uuid.in_(list(uuids)))
        return {row.gpu_uuid: row.last_leased_at for row in self.s.execute(query)}

    def try_allocate_gpus(self, lease: Lease, uuids: Sequence[str], *, host: str,
                          now: datetime) -> bool:
        """Insert the allocation rows; False if any GPU is already held (the unique
        key refused it, possibly after waiting for a concurrent transaction)."""
        rows = [dict(gpu_uuid=u, host=host, lease_id=lease.id, allocated_at=now) for u in uuids]
        try:
            with self.s.begin_nested():
                self.s.execute(insert(gpu_allocations), rows)
        except IntegrityError:
            return False
        for uuid in uuids:
            self._touch_usage(uuid, now)
        return True

    def try_allocate_port(self, lease: Lease, port: int, *, host: str, now: datetime) -> bool:
        try:
            with self.s.begin_nested():
                self.s.execute(insert(port_allocations).values(
                    host=host, port=port, lease_id=lease.id, allocated_at=now))
        except IntegrityError:
            return False
        updated = self.s.execute(update(port_usage).where(
            port_usage.c.host == host, port_usage.c.port == port).values(last_used_at=now))
        if updated.rowcount == 0:  # type: ignore[attr-defined]
            self.s.execute(insert(port_usage).values(host=host, port=port, last_used_at=now))
        return True

    def ports_last_used(self, host: str) -> dict[int, datetime]:
        query = select(port_usage.c.port, port_usage.c.last_used_at).where(
            port_usage.c.host == host)
        return {port: at for port, at in self.s.execute(query)}

    def free_gpus(self, lease_ids: Collection[int]) -> None:
        """Free the GPUs of these leases (one statement, however many)."""
        if lease_ids:
            self.s.execute(delete(gpu_allocations).where(
                gpu_allocations.c.lease_id.in_(list(lease_ids))))

    def free_ports(self, lease_ids: Collection[int]) -> None:
        """Free the ports of these leases: only once their containers are gone."""
        if lease_ids:
            self.s.execute(delete(port_allocations).where(
                port_allocations.c.lease_id.in_(list(lease_ids))))

    def allocation_counts(self) -> tuple[int, int]:
        gpus = self.s.scalar(select(func.count()).select_from(gpu_allocations)) or 0
        ports = self.s.scalar(select(func.count()).select_from(port_allocations)) or 0
        return gpus, ports

    def _touch_usage(self, uuid: str, now: datetime) -> None:
        updated = self.s.execute(update(gpu_usage).where(gpu_usage.c.gpu_uuid == uuid)
                                 .values(last_leased_at=now))
        if updated.rowcount == 0:  # type: ignore[attr-defined]
            self.s.execute(insert(gpu_usage).values(gpu_uuid=uuid, last_leased_at=now))

    # ----------------------------------------------------------------- secrets
    def password_tokens(self) -> list[tuple[int, str]]:
        """(lease id, encrypted password) of every lease that still holds one."""
        query = select(leases.c.id, leases.c.password_token).where(
            leases.c.password_token.is_not(None)).order_by(leases.c.id)
        return [(row.id, row.password_token) for row in self.s.execute(query)]

    def replace_password_token(self, lease_id: int, *, old: str, new: str) -> bool:
        """Compare and set: a token cleared or changed meanwhile (the lease ended) is
        left as it is now. True if replaced."""
        result = self.s.execute(update(leases).where(
            leases.c.id == lease_id, leases.c.password_token == old).values(password_token=new))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------- audit
    def audit(self, *, at: datetime, actor: str, action: str, lease_id: int | None = None,
              detail: str | None = None) -> None:
        self.s.execute(insert(audit).values(at=at, actor=actor, action=action,
                                            lease_id=lease_id, detail=detail))
