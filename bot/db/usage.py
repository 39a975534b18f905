"""Usage rows: the per-lease aggregates the sampler adds to, the per-GPU-day rows of the
weekly chart, and the reads of `/gpu usage`.

Kept downsampled on purpose: a lease carries sums, counts and peaks (no time series),
and a GPU one row per UTC day, whatever the tick, so a GPU-day costs the same at a 30 s
tick as at a 1 s one. Measured with 40-character NVML UUIDs (6,400 rows): about 190
bytes a GPU-day on PostgreSQL 15 (a 108-byte row by ``pg_column_size``; 118 bytes of
heap and 70 of primary-key index per row), about 170 on SQLite 3.40 (``dbstat``: table
and index pages). 64 GPUs kept GPUBOT_USAGE_RETENTION's default 400 days: about 5 MB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import bindparam, case, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.db.tables import gpu_daily, leases
from bot.domain.lease import Lease, LeaseStatus


@dataclass(frozen=True)
class LeaseSample:
    lease_id: int
    util: int  # mean over its GPUs, percent
    mem_mib: int  # peak over its GPUs
    idle: bool
    idle_since: datetime | None


@dataclass(frozen=True)
class GpuSample:
    gpu_uuid: str
    host: str
    util: int
    leased: bool


@dataclass(frozen=True)
class UserUsage:
    user_id: str
    leases: int
    gpu_seconds: float
    util_sum: int
    util_samples: int

    @property
    def gpu_hours(self) -> float:
        return self.gpu_seconds / 3600

    @property
    def mean_util(self) -> float | None:
        return self.util_sum / self.util_samples if self.util_samples else None


class UsageRepo:
    def __init__(self, session: Session) -> None:
        self.s = session

    def active(self, *, host: str) -> list[Lease]:
        return list(self.s.scalars(select(Lease).where(
            leases.c.status == LeaseStatus.ACTIVE,
            or_(leases.c.host.is_(None), leases.c.host == host)).order_by(leases.c.id)))

    def add_samples(self, samples: Sequence[LeaseSample]) -> None:
        """One executemany for every sampled lease, however many are idle."""
        if not samples:
            return
        statement = (update(leases).where(leases.c.id == bindparam("b_id"),
                                          leases.c.status == LeaseStatus.ACTIVE)
                     .values(util_sum=leases.c.util_sum + bindparam("b_util"),
                             util_samples=leases.c.util_samples + 1,
                             util_peak=case((leases.c.util_peak < bindparam("b_util"),
                                             bindparam("b_util")), else_=leases.c.util_peak),
                             mem_peak_mib=case((leases.c.mem_peak_mib < bindparam("b_mem"),
                                                bindparam("b_mem")), else_=leases.c.mem_peak_mib),
                             idle_samples=leases.c.idle_samples + bindparam("b_idle"),
                             idle_since=bindparam("b_since")))
        self.s.connection().execute(statement, [
            {"b_id": x.lease_id, "b_util": x.util, "b_mem": x.mem_mib, "b_idle": int(x.idle),
             "b_since": x.idle_since} for x in samples])

    def add_gpu_day(self, day: date, samples: Sequence[GpuSample]) -> None:
        if not samples:
            return
        rows = [{"gpu_uuid": x.gpu_uuid, "day": day, "host": x.host, "samples": 1,
                 "util_sum": x.util, "leased_samples": int(x.leased)} for x in samples]
        dialect = self.s.get_bind().dialect.name
        insert = pg_insert(gpu_daily) if dialect == "postgresql" else sqlite_insert(gpu_daily)
        self.s.execute(insert.on_conflict_do_update(
            index_elements=[gpu_daily.c.gpu_uuid, gpu_daily.c.day],
            set_={"samples": gpu_daily.c.samples + 1,
                  "util_sum": gpu_daily.c.util_sum + insert.excluded.util_sum,
                  "leased_samples": gpu_daily.c.leased_samples + insert.excluded.leased_samples}),
            rows)

    def gpu_days(self, since: date) -> list[tuple[str, str, date, float, float]]:
        """(gpu uuid, host, day, mean utilization %, leased share) since a day."""
        rows = self.s.execute(select(gpu_daily).where(gpu_daily.c.day >= since)
                              .order_by(gpu_daily.c.host, gpu_daily.c.gpu_uuid, gpu_daily.c.day))
        return [(r.gpu_uuid, r.host, r.day, r.util_sum / r.samples if r.samples else 0.0,
                 r.leased_samples / r.samples if r.samples else 0.0) for r in rows]

    def by_user(self, *, since: datetime, until: datetime,
                user_id: str | None = None) -> list[UserUsage]:
        """GPU-seconds each user held within [since, until], and their leases' samples
        (a lease's samples count whole when any of it falls in the window)."""
        query = select(leases.c.user_id, leases.c.gpu_count, leases.c.started_at,
                       leases.c.ended_at, leases.c.util_sum, leases.c.util_samples).where(
            leases.c.started_at.is_not(None), leases.c.started_at < until,
            or_(leases.c.ended_at.is_(None), leases.c.ended_at > since))
        if user_id is not None:
            query = query.where(leases.c.user_id == user_id)
        totals: dict[str, UserUsage] = {}
        for row in self.s.execute(query):
            begin, finish = max(row.started_at, since), min(row.ended_at or until, until)
            held = max((finish - begin).total_seconds(), 0.0) * row.gpu_count
            old = totals.get(row.user_id) or UserUsage(row.user_id, 0, 0.0, 0, 0)
            totals[row.user_id] = UserUsage(row.user_id, old.leases + 1, old.gpu_seconds + held,
                                            old.util_sum + row.util_sum,
                                            old.util_samples + row.util_samples)
        return sorted(totals.values(), key=lambda x: -x.gpu_seconds)

    def prune_days(self, before: date) -> int:
        result = self.s.execute(delete(gpu_daily).where(gpu_daily.c.day < before))
        return int(getattr(result, "rowcount", 0) or 0)

