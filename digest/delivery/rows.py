"""Which rows of the queue a statement touches: the readers an enqueue adds (once each, and a correction
only where the edition it replaces had not reached), and the rows of a batch, written so that each
statement reads through an index on SQLite and on PostgreSQL (tests/test_claim_plans.py)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Executable, Exists, Select, and_, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from digest.delivery.schema import deliveries, editions
from subscribers.schema import subscribers


def has_it(edition: str) -> ColumnElement[bool]:
    """The reader has the edition already: a row for it, or one of an earlier revision of its day that
    reached them or is on its way. A correction goes only where the edition it replaces had not."""
    d = deliveries.c
    this = select(d.subscriber_id).where(d.subscriber_id == subscribers.c.id, d.edition == edition).exists()
    return or_(this, reached_before(edition))


def reached_before(edition: str) -> Exists:
    """The reader got (or is getting) an earlier revision of the edition's day: a correction skips them.
    A NOT EXISTS on other editions' rows, not on the rows this INSERT adds (see insert_new)."""
    d = deliveries.c
    return select(d.subscriber_id).where(d.subscriber_id == subscribers.c.id, d.edition.in_(replaced(edition)),
                                         d.status.in_(("sent", "leased"))).exists()


def replaced(edition: str) -> Select[Any]:
    """The keys of the earlier revisions of the edition's day."""
    this, earlier = editions.alias("this"), editions.alias("earlier")
    return select(earlier.c.key).join(this, and_(earlier.c.list_id == this.c.list_id, earlier.c.day == this.c.day,
                                                 earlier.c.rhythm == this.c.rhythm, earlier.c.part == this.c.part,
                                                 earlier.c.revision < this.c.revision)).where(this.c.key == edition)


def among(pairs: list[tuple[str, int]]) -> ColumnElement[bool]:
    """The rows of these (edition, subscriber) pairs, as one list of subscribers per edition: for a
    list of pairs, (edition, subscriber_id) IN ((…), …), SQLite walks its whole primary key (23 ms
    at 200,000 rows), and PostgreSQL may walk every row of the edition."""
    by_edition: dict[str, list[int]] = {}
    for edition, subscriber_id in pairs:
        by_edition.setdefault(edition, []).append(subscriber_id)
    return or_(*(and_(deliveries.c.edition == edition, deliveries.c.subscriber_id.in_(ids))
                 for edition, ids in by_edition.items()))


ROW = ["edition", "subscriber_id", "status", "attempts", "not_before", "updated_at", "choice"]


def insert_new(conn: Connection, rows: Select[Any], missing: ColumnElement[bool]) -> Executable:
    """INSERT … SELECT `rows` less the readers who have a row of the edition already, skipped by the
    primary key as the rows go in (ON CONFLICT DO NOTHING), not by `missing`, a NOT EXISTS on the table
    being filled: PostgreSQL plans that one while the table is still empty, as a nested loop whose every
    probe walks past all the rows this same INSERT has added so far. Quadratic: 20,000 readers took
    15 s, a million would take days. Two enqueues at once also skip each other's rows this way."""
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        upsert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(deliveries)
        return upsert.from_select(ROW, rows).on_conflict_do_nothing(
            index_elements=[deliveries.c.edition, deliveries.c.subscriber_id])
    return insert(deliveries).from_select(ROW, rows.where(missing))
