"""Column types that keep Python values honest across SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Integer, Text
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite has no time zones); read back as aware UTC.
    Refuses naive datetimes on the way in, so local time can never sneak in."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Seconds(TypeDecorator[timedelta]):
    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: timedelta | None, dialect: Any) -> int | None:
        return None if value is None else int(value.total_seconds())

    def process_result_value(self, value: int | None, dialect: Any) -> timedelta | None:
        return None if value is None else timedelta(seconds=value)


class CsvTuple(TypeDecorator[tuple[str, ...]]):
    impl = Text
    cache_ok = True

    def process_bind_param(self, value: tuple[str, ...] | None, dialect: Any) -> str:
        return ",".join(value or ())

    def process_result_value(self, value: str | None, dialect: Any) -> tuple[str, ...]:
        return tuple(v for v in (value or "").split(",") if v)
