"""A subscriber row as the store reads and writes it: times in UTC, rubrics as one sorted string."""
from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, select

from subscribers.model import Subscriber
from subscribers.schema import subscribers


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were written as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def join_rubrics(rubrics: frozenset[str]) -> str:
    return ",".join(sorted(rubrics))


def split_stored(value: str) -> frozenset[str]:
    return frozenset(key for key in value.split(",") if key)


def find(conn: Connection, address: str) -> Row[Any] | None:
    return conn.execute(select(subscribers).where(subscribers.c.email == address)).first()


_COLUMNS = [f.name for f in dataclasses.fields(Subscriber)]


def subscriber(row: Row[Any]) -> Subscriber:
    values = {name: getattr(row, name) for name in _COLUMNS}
    values.update(
        rubrics=split_stored(row.rubrics), created_at=as_utc(row.created_at), updated_at=as_utc(row.updated_at)
    )
    return Subscriber(**values)
