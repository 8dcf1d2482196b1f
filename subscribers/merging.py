"""Many rows merged into the list a page at a time (imports of 200,000 rows, a preferences form): what a
row gives, what it may change (consent first), and the consent row of each change."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import Any, Literal, NamedTuple

from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, bindparam, select, text
from sqlalchemy import exc as sa_exc

from digest.core.errors import InvalidSubscriber
from subscribers import consent
from subscribers.consent import Origin
from subscribers.keyed import Hasher
from subscribers.model import NEWSLETTER_HOUR, NEWSROOM_DAY
from subscribers.rows import as_utc, join_rubrics, now
from subscribers.schema import consent_events, erasures, subscribers
from subscribers.validate import Fields

Outcome = Literal["created", "updated", "unchanged", "erased"]
# The consent event a change of status is recorded as.
STATUS_EVENTS = {"unsubscribed": "unsubscribed", "bounced": "bounced", "active": "resubscribed"}


class Upserted(NamedTuple):
    """What `Store.upsert` did; ``kept_status`` is set when a row asked to re-activate someone who left.
    "erased": the address was erased at the reader's request, and nothing was written."""

    outcome: Outcome
    kept_status: str | None = None


DEFAULTS = {"name": "", "locale": "fr", "timezone": "UTC", "rubrics": "", "status": "active", "delivery_time": None,
            "cadence": "daily", "weekday": None}
FIELDS = tuple(DEFAULTS)
assert FIELDS[0] == "name"  # _EventRows.created leaves it out of what it compares
_given = attrgetter(*FIELDS)
PAGE = 2000  # addresses per IN (…) lookup: under SQLite's limit on bound parameters (32,766 since 3.32) and PostgreSQL's (65,535)
_UPDATE = (
    subscribers.update()
    .where(subscribers.c.email == bindparam("_email"))
    .values({name: bindparam(f"_{name}") for name in (*FIELDS, "updated_at")})
)


def pages(rows: Iterable[Fields], size: int) -> Iterator[list[Fields]]:
    page: list[Fields] = []
    for row in rows:
        page.append(row)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def fields_given(fields: Fields) -> dict[str, Any]:
    """The columns a row gives, as stored (None on a Fields is "not given")."""
    given = {name: value for name, value in zip(FIELDS, _given(fields)) if value is not None}
    if fields.rubrics is not None:
        given["rubrics"] = join_rubrics(fields.rubrics)
    if fields.delivery_time == NEWSLETTER_HOUR:
        given["delivery_time"] = None  # given: back to the newsletter's hour
    if fields.weekday == NEWSROOM_DAY:
        given["weekday"] = None  # given: back to the newsroom's weekly day
    return given


def merge_page(conn: Connection, page: list[Fields], defaults: dict[str, Any], by: Origin,
                hasher: Hasher | None) -> list[Upserted]:
    """One lookup for the page, one executemany for its inserts, one for its updates, one for its consent rows."""
    emails = sorted({f.email for f in page})
    found = by_email(conn, subscribers, FIELDS, emails)
    current = {email: dict(zip(FIELDS, values)) for email, *values in found}
    gone = _erased(conn, hasher, [email for email in emails if email not in current])
    inserts: dict[str, dict[str, Any]] = {}
    updates: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    results = []
    stamp = now()
    event_row = _EventRows(by, stamp)
    for fields in page:
        given = fields_given(fields)
        not_pending(given.get("status", ""))
        before = current.get(fields.email)
        if before is None and fields.email in gone:
            results.append(Upserted("erased"))
            continue
        if before is None:
            row = {**defaults, **given}
            current[fields.email] = row
            inserts[fields.email] = {**row, "email": fields.email, "updated_at": stamp,
                                     "created_at": as_utc(fields.created_at) if fields.created_at else stamp}
            events.append(event_row.created(fields.email, "imported" if by.channel == "import" else "added", row))
            results.append(Upserted("created"))
            continue
        kept = None
        if given.get("status") == "active" and before["status"] != "active":
            kept = before["status"]
            del given["status"]
        changes = {name: value for name, value in given.items() if before[name] != value}
        if not changes:
            results.append(Upserted("unchanged", kept))
            continue
        before.update(changes)
        if fields.email in inserts:  # the same address twice in one page: the insert takes the last word
            inserts[fields.email].update(changes)
        else:
            updates[fields.email] = {f"_{name}": value for name, value in before.items()}
            updates[fields.email].update(_email=fields.email, _updated_at=stamp)
        event = STATUS_EVENTS.get(changes.get("status", ""), "changed")
        events.append(event_row(fields.email, event, detail(changes)))
        results.append(Upserted("updated", kept))
    try:
        insert_many(conn, subscribers, list(inserts.values()))
        if updates:
            conn.execute(_UPDATE, list(updates.values()))
    except sa_exc.IntegrityError:
        raise InvalidSubscriber("an address was added by someone else during this import", "run it again") from None
    insert_many(conn, consent_events, events)
    return results


class _EventRows:
    """consent.row for one page's changes: what the origin and the moment give is made once per event,
    and the JSON of each distinct detail once (an import's details repeat: the name is only "(changed)")."""

    def __init__(self, by: Origin, at: datetime) -> None:
        self.by, self.at = by, at
        self._made: dict[str, dict[str, Any]] = {}
        self._created: dict[tuple[str, tuple[Any, ...]], dict[str, Any]] = {}

    def __call__(self, email: str, event: str, changed: Mapping[str, Any]) -> dict[str, Any]:
        if (made := self._made.get(event)) is None:
            made = self._made[event] = consent.row("", event, self.by, self.at)
        return {**made, "email": email, "detail": _detail_json(tuple(changed.items())) if changed else None}

    def created(self, email: str, event: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """The consent row of a reader created with `row` (every field, in FIELDS' order): the same for
        every row of the same values but the name, which the detail only says was given."""
        key = (event, tuple(row.values())[1:])
        if (made := self._created.get(key)) is None:
            made = self._created[key] = self("", event, detail({name: value for name, value in row.items()
                                                                if value is not None}))
        return {**made, "email": email}


# What consent.row writes: json.dumps with these options would build this encoder on every call.
_as_json = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


@lru_cache(maxsize=4096)
def _detail_json(items: tuple[tuple[str, Any], ...]) -> str:
    return _as_json(dict(items))


def _erased(conn: Connection, hasher: Hasher | None, emails: list[str]) -> Mapping[str, Any]:
    """consent.erased, skipped when no address was ever erased (one indexed row to look at, where
    consent.erased would hash every address under every key first)."""
    if not emails or conn.execute(select(erasures.c.digest).limit(1)).first() is None:
        return {}
    return consent.erased(conn, hasher, emails)


_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def by_email(conn: Connection, table: Table, names: tuple[str, ...], emails: list[str]) -> list[tuple[Any, ...]]:
    """(email, *names) of the table's rows with one of these addresses (at most PAGE), with the IN (…)
    written here for the driver: Core compiles an IN of 2,000 values in 5 ms, the driver takes it in 2.
    The columns read need no result processing (text and numbers)."""
    if not emails:
        return []
    mark = _MARKS.get(conn.dialect.paramstyle)
    if mark is None:
        query = select(table.c.email, *(table.c[name] for name in names)).where(table.c.email.in_(emails))
        return [tuple(row) for row in conn.execute(query)]
    quote = conn.dialect.identifier_preparer
    columns = ", ".join(quote.format_column(table.c[name]) for name in ("email", *names))
    sql = f"SELECT {columns} FROM {quote.format_table(table)} WHERE email IN ({', '.join([mark] * len(emails))})"
    return [tuple(row) for row in conn.exec_driver_sql(sql, tuple(emails))]


def insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]], skip_taken: bool = False) -> int:
    """``conn.execute(table.insert(), rows)``, the rows handed to the driver's executemany as tuples:
    Core binds each row's parameters one by one in Python (about 10 µs a row for these tables), which
    an import of a million rows feels. Each value still goes through its type's bind processor (SQLite
    stores a DateTime as SQLAlchemy's text), once per distinct value. ``skip_taken``: a row whose key
    is taken is left out (ON CONFLICT DO NOTHING, SQLite and PostgreSQL alike), and the count returned
    is the rows written; without it, the count is what the driver says (-1 where it does not)."""
    if not rows:
        return 0
    names = list(rows[0])
    mark = _MARKS.get(conn.dialect.paramstyle)
    try:
        if mark is None or set(map(len, rows)) != {len(names)}:
            raise KeyError(mark)
        values = list(map(itemgetter(*names), rows)) if len(names) > 1 else [(row[names[0]],) for row in rows]
    except KeyError:  # a driver of another kind, or rows of different columns: Core sorts them out
        if not skip_taken:
            return conn.execute(table.insert(), rows).rowcount
        from sqlalchemy.dialects import postgresql, sqlite  # noqa: PLC0415 — a rare path: 50 ms of imports

        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        statement = dialect_insert(table).on_conflict_do_nothing().returning(*table.primary_key.columns)
        return len(conn.execute(statement, rows).all())  # an executemany's rowcount is not always kept
    quote = conn.dialect.identifier_preparer
    sql = (f"INSERT INTO {quote.format_table(table)} ({', '.join(quote.format_column(table.c[n]) for n in names)}) "
           f"VALUES ({', '.join([mark] * len(names))})" + (" ON CONFLICT DO NOTHING" if skip_taken else ""))
    processed = [(position, bind) for position, name in enumerate(names)
                 if (bind := table.c[name].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)) is not None]
    if processed:
        columns = list(zip(*values))
        for position, bind in processed:
            columns[position] = tuple(map(_Bound(bind).__getitem__, columns[position]))
        values = list(zip(*columns))
    return conn.exec_driver_sql(sql, values).rowcount


class _Bound(dict[Any, Any]):
    """What a type's bind processor makes of each distinct value (None included), made once."""

    def __init__(self, bind: Callable[[Any], Any]) -> None:
        super().__init__()
        self.bind = bind

    def __missing__(self, value: Any) -> Any:
        made = self[value] = self.bind(value)
        return made


def detail(values: Mapping[str, Any]) -> dict[str, Any]:
    """What a consent row says of changed fields: their new values, but never a name (only that it changed)."""
    return {name: ("(changed)" if name == "name" else value) for name, value in values.items()}


def not_pending(status: str) -> str:
    if status == "pending":
        raise InvalidSubscriber("status pending is the sign-up form's: a reader is pending only until they confirm",
                                "use active, unsubscribed or bounced")
    return status


# The line each address of an import was first on: a temporary table on the import's connection, in
# the database's temporary storage (SQLite: a file), not a dict in memory (a million addresses: 150 MB).
_first_lines = Table("digest_import_first_lines", MetaData(), Column("email", String(320), primary_key=True),
                     Column("line", Integer, nullable=False), prefixes=["TEMPORARY"], sqlite_with_rowid=False)
_DROP = text(f"DROP TABLE IF EXISTS {_first_lines.name}")


class FirstLines:
    """Addresses already met in this import, with their line. Made empty on the connection (a table left
    by an import that failed on the same connection goes first); `drop` when done. On PostgreSQL a
    failed transaction takes it away with it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        conn.execute(_DROP)
        _first_lines.create(conn)

    def unique(self, page: list[tuple[int, Fields]]) -> tuple[list[tuple[int, Fields]], list[tuple[int, str, int]]]:
        """The page's rows whose address was not met before (in the file's order), and the others as
        (line, address, first line). The page's first lines go in with taken addresses skipped: the
        table is read only when some were (one file in a thousand has a duplicate in a page)."""
        fresh: dict[str, int] = {}
        kept, again = [], []
        for line, fields in page:
            met = fresh.get(fields.email)
            if met is not None:
                again.append((line, fields.email, met))
                continue
            fresh[fields.email] = line
            kept.append((line, fields))
        added = insert_many(self.conn, _first_lines, [{"email": email, "line": line} for email, line in fresh.items()],
                            skip_taken=True)
        if added == len(fresh):
            return kept, again
        earlier = {email: line for email, line in by_email(self.conn, _first_lines, ("line",), sorted(fresh))
                   if line != fresh[email]}
        again = [(line, email, earlier.get(email, first)) for line, email, first in again]  # the file's first line
        again.extend((line, fields.email, earlier[fields.email]) for line, fields in kept if fields.email in earlier)
        return [(line, fields) for line, fields in kept if fields.email not in earlier], again

    def drop(self) -> None:
        self.conn.execute(_DROP)
