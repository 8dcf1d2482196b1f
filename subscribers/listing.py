"""Passes over the list (the dry run, `subscribers list` and `export`): keyset pages in id order, each
a range of one index, and their rows made into Subscribers at a few µs each, so that a pass costs the
same per reader at ten thousand readers as at a million (tests/benchmarks/bench_passes.py)."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, select

from subscribers.model import Subscriber
from subscribers.rows import split_stored
from subscribers.schema import subscribers

# The columns a Subscriber is made of, in its fields' order: a page's rows go straight into it.
_FIELDS = [field.name for field in dataclasses.fields(Subscriber)]
LISTED: tuple[ColumnElement[Any], ...] = tuple(subscribers.c[name] for name in _FIELDS)
_RUBRICS, _CREATED, _UPDATED = (_FIELDS.index(name) for name in ("rubrics", "created_at", "updated_at"))
PAGE_ROWS = 1000  # rows per page: the query's own cost is a fraction of a µs per row


def page_query(status: str | None, after: int, batch: int, columns: Sequence[ColumnElement[Any]] = LISTED) -> Select[Any]:
    """One keyset page of the list: `columns` (the id first) of the subscribers (of one status) with an
    id above `after`, in id order: a range of the primary key, or with a status a range of the index on
    (status, id), never a sort, whatever the list's size (tests/test_query_plans.py)."""
    query = select(*columns).where(subscribers.c.id > after).order_by(subscribers.c.id).limit(batch)
    return query if status is None else query.where(subscribers.c.status == status)


def utc(value: datetime) -> datetime:
    """A stored time in UTC: SQLite gives it back naive (it was written as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Rubrics(dict[str, frozenset[str]]):
    """split_stored once per distinct stored value: a list has a few dozen choices, not a million."""

    def __missing__(self, stored: str) -> frozenset[str]:
        self[stored] = found = split_stored(stored)
        return found

    def __call__(self, stored: str) -> frozenset[str]:
        return self[stored]


def made(rows: Iterable[Sequence[Any]]) -> Iterator[Subscriber]:
    """Subscribers from rows of LISTED: by position, not by name (SQLAlchemy's Row.__getattr__ costs
    1.7 µs a column), times in UTC, each stored rubric choice split once per pass."""
    split = Rubrics()
    for row in rows:
        values = list(row)
        values[_RUBRICS] = split(values[_RUBRICS])
        values[_CREATED], values[_UPDATED] = utc(values[_CREATED]), utc(values[_UPDATED])
        yield Subscriber(*values)
