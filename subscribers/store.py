"""The subscriber store: who is on the list, in the SQL database the delivery ledger shares."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from sqlalchemy import ColumnElement, Connection, Engine, Row, bindparam, func, select
from sqlalchemy import exc as sa_exc

from digest.core.database import database_url, migrate, open_engine, sqlite_file, where
from digest.core.errors import InvalidSubscriber, StoreError
from subscribers.model import STATUSES, Subscriber
from subscribers.schema import subscribers
from subscribers.validate import (
    Fields,
    check_fields,
    check_locale,
    check_status,
    check_timezone,
    normalise_email,
)

UTC = UTC
Outcome = Literal["created", "updated", "unchanged"]


class Upserted(NamedTuple):
    """What `Store.upsert` did; ``kept_status`` is set when a row asked to re-activate someone who left."""

    outcome: Outcome
    kept_status: str | None = None


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were written as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def join_rubrics(rubrics: frozenset[str]) -> str:
    return ",".join(sorted(rubrics))


def split_stored(value: str) -> frozenset[str]:
    return frozenset(key for key in value.split(",") if key)


class Store:
    """Subscribers over a SQLAlchemy engine (SQLite by default, PostgreSQL in principle).

    ``engine`` is public: the delivery ledger works on the same engine and tables.
    Inside ``with store.bulk() as tx:`` every call on ``tx`` shares one transaction.
    """

    def __init__(self, url: str | Engine) -> None:
        self.engine = url if isinstance(url, Engine) else open_engine(url)
        self._conn: Connection | None = None
        migrate(self.engine)  # the schema at its newest revision, whoever made the database

    @classmethod
    def open(cls, path_or_url: str | Path, create: bool = True) -> Store:
        """The store at a path or URL; with ``create=False`` a SQLite file must exist already (a
        command that reads the list must not make up an empty one)."""
        url = database_url(path_or_url)
        path = sqlite_file(url)
        if not create and path is not None and not path.is_file():
            raise StoreError(f"cannot open the database {path}: there is no such file",
                             "import subscribers first (digest subscribers import FILE.csv -c digest.toml), "
                             "or pass -c / --database to name the right one")
        return cls(url)

    def where(self) -> str:
        """The database as a person reads it: a file's path, or the URL without its password."""
        return where(self.engine)

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        if self._conn is not None:
            yield self._conn
        else:
            with self.engine.begin() as conn:
                yield conn

    @contextmanager
    def bulk(self) -> Iterator[Store]:
        """A view of this store whose calls all run in one transaction, committed at the end."""
        with self.engine.begin() as conn:
            yield self.using(conn)

    def using(self, conn: Connection) -> Store:
        """A view of this store whose calls run on ``conn``, in its transaction: the caller commits
        (the delivery ledger records a bounce and its own row in one commit)."""
        bound = Store.__new__(Store)
        bound.engine, bound._conn = self.engine, conn
        return bound

    def close(self) -> None:
        """Let go of the database's connections (a process that is done with the store)."""
        self.engine.dispose()

    # -- reading ------------------------------------------------------------------------------

    def get(self, email: str) -> Subscriber | None:
        try:
            address = normalise_email(email)
        except InvalidSubscriber:
            return None  # nobody can have an invalid address
        with self._begin() as conn:
            row = conn.execute(select(subscribers).where(subscribers.c.email == address)).first()
        return _subscriber(row) if row else None

    def get_by_id(self, subscriber_id: int) -> Subscriber | None:
        with self._begin() as conn:
            row = conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id)).first()
        return _subscriber(row) if row else None

    def count(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        query = select(subscribers.c.status, func.count()).group_by(subscribers.c.status)
        with self._begin() as conn:
            counts.update({status: n for status, n in conn.execute(query)})
        return counts

    def iter_subscribers(self, status: str | None = None, batch: int = 1000) -> Iterator[Subscriber]:
        """Every subscriber (of one status) in id order, ``batch`` rows per query.

        Keyset pagination (id > last seen), each page its own short read: the sender can stream
        200,000 rows without holding them, or a read snapshot, for the whole run.
        """
        if status is not None:
            status = check_status(status)
        last = 0
        while True:
            query = select(subscribers).where(subscribers.c.id > last).order_by(subscribers.c.id).limit(batch)
            if status is not None:
                query = query.where(subscribers.c.status == status)
            with self._begin() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                yield _subscriber(row)
            if len(rows) < batch:
                return
            last = rows[-1].id

    def variants(self) -> list[tuple[str, frozenset[str]]]:
        """The distinct (locale, rubrics) of active subscribers: one rendered variant each."""
        query = (
            select(subscribers.c.locale, subscribers.c.rubrics)
            .where(subscribers.c.status == "active")
            .distinct()
        )
        with self._begin() as conn:
            pairs = {(locale, split_stored(rubrics)) for locale, rubrics in conn.execute(query)}
        return sorted(pairs, key=lambda pair: (pair[0], sorted(pair[1])))

    # -- writing ------------------------------------------------------------------------------

    def add(
        self,
        email: str,
        name: str = "",
        locale: str = "fr",
        timezone: str = "UTC",
        rubrics: frozenset[str] = frozenset(),
        status: str = "active",
        created_at: datetime | None = None,
    ) -> Subscriber:
        """A new subscriber; InvalidSubscriber if a field is wrong or the address is on the list already."""
        fields = check_fields(email, name, locale, timezone, rubrics, status)
        with self._begin() as conn:
            if _find(conn, fields.email) is not None:
                raise InvalidSubscriber(f"{fields.email} is a subscriber already")
            return _insert(conn, {"email": fields.email, **_given(fields)}, created_at)

    def upsert(
        self,
        email: str,
        name: str | None = None,
        locale: str | None = None,
        timezone: str | None = None,
        rubrics: frozenset[str] | None = None,
        status: str | None = None,
        created_at: datetime | None = None,
        default_locale: str = "fr",
        default_timezone: str = "UTC",
    ) -> Upserted:
        """Create or update one subscriber by address; see `merge` for the rules."""
        fields = check_fields(email, name, locale, timezone, rubrics, status, created_at)
        return self.merge([fields], default_locale, default_timezone)[0]

    def merge(self, rows: Iterable[Fields], default_locale: str = "fr", default_timezone: str = "UTC") -> list[Upserted]:
        """Create or update checked rows by address, a page at a time (imports of 200,000 rows).

        A field that is None is "not given": an existing subscriber keeps theirs, a new one gets the
        default. Consent comes first: someone unsubscribed or bounced is never made active again here
        (the status is kept and reported as ``kept_status``); active → unsubscribed/bounced is applied.
        ``created_at`` counts only when creating: the date someone subscribed is history. Nothing
        changed, nothing written: ``updated_at`` stays.
        """
        defaults = {**_DEFAULTS, "locale": check_locale(default_locale), "timezone": check_timezone(default_timezone)}
        results: list[Upserted] = []
        with self._begin() as conn:
            for page in _pages(rows, _PAGE):
                results.extend(_merge_page(conn, page, defaults))
        return results

    def set_status(self, email_or_id: str | int, status: str) -> bool:
        """Set the status (and updated_at); True if it changed, False if it was so already or nobody matched."""
        status = check_status(status)
        where = self._which(email_or_id)
        if where is None:
            return False
        query = subscribers.update().where(where, subscribers.c.status != status).values(status=status, updated_at=now())
        with self._begin() as conn:
            return conn.execute(query).rowcount > 0

    def unsubscribe(self, email_or_id: str | int) -> bool:
        """Idempotent: True the first time, False when already unsubscribed (or unknown)."""
        return self.set_status(email_or_id, "unsubscribed")

    def remove(self, email: str) -> bool:
        """Delete a subscriber and, by cascade, their ledger rows; True if there was one."""
        where = self._which(email)
        if where is None:
            return False
        with self._begin() as conn:
            return conn.execute(subscribers.delete().where(where)).rowcount > 0

    def _which(self, email_or_id: str | int) -> ColumnElement[bool] | None:
        if isinstance(email_or_id, bool):
            return None  # an int to Python, but neither an id nor an address
        if isinstance(email_or_id, int):
            return subscribers.c.id == email_or_id
        try:
            return subscribers.c.email == normalise_email(email_or_id)
        except InvalidSubscriber:
            return None


_DEFAULTS = {"name": "", "locale": "fr", "timezone": "UTC", "rubrics": "", "status": "active"}
_FIELDS = tuple(_DEFAULTS)
_PAGE = 500  # addresses per IN (…) lookup: well under SQLite's limit on bound parameters
_UPDATE = (
    subscribers.update()
    .where(subscribers.c.email == bindparam("_email"))
    .values({name: bindparam(f"_{name}") for name in (*_FIELDS, "updated_at")})
)


def _find(conn: Connection, address: str) -> Row[Any] | None:
    return conn.execute(select(subscribers).where(subscribers.c.email == address)).first()


def _insert(conn: Connection, row: dict[str, Any], created_at: datetime | None) -> Subscriber:
    """Insert checked fields (rubrics already joined); times in UTC, because SQLite drops the offset."""
    stamp = now()
    row = {**row, "created_at": as_utc(created_at) if created_at else stamp, "updated_at": stamp}
    try:
        key = conn.execute(subscribers.insert().values(**row)).inserted_primary_key
    except sa_exc.IntegrityError:  # added by another process since we looked
        raise InvalidSubscriber(f"{row['email']} is a subscriber already") from None
    assert key is not None  # an INSERT's result always has one (None is for other statements)
    return Subscriber(id=key[0], **{**row, "rubrics": split_stored(row["rubrics"])})


def _pages(rows: Iterable[Fields], size: int) -> Iterator[list[Fields]]:
    page: list[Fields] = []
    for row in rows:
        page.append(row)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def _given(fields: Fields) -> dict[str, Any]:
    given = {name: getattr(fields, name) for name in _FIELDS}
    if fields.rubrics is not None:
        given["rubrics"] = join_rubrics(fields.rubrics)
    return {name: value for name, value in given.items() if value is not None}


def _merge_page(conn: Connection, page: list[Fields], defaults: dict[str, Any]) -> list[Upserted]:
    """One lookup for the page, one executemany for its inserts and one for its updates."""
    query = select(subscribers.c.email, *(subscribers.c[name] for name in _FIELDS))
    found = conn.execute(query.where(subscribers.c.email.in_(sorted({f.email for f in page})))).all()
    current = {row.email: {name: getattr(row, name) for name in _FIELDS} for row in found}
    inserts: dict[str, dict[str, Any]] = {}
    updates: dict[str, dict[str, Any]] = {}
    results = []
    stamp = now()
    for fields in page:
        given = _given(fields)
        before = current.get(fields.email)
        if before is None:
            row = {**defaults, **given}
            current[fields.email] = row
            inserts[fields.email] = {**row, "email": fields.email, "updated_at": stamp,
                                     "created_at": as_utc(fields.created_at) if fields.created_at else stamp}
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
        results.append(Upserted("updated", kept))
    try:
        if inserts:
            conn.execute(subscribers.insert(), list(inserts.values()))
        if updates:
            conn.execute(_UPDATE, list(updates.values()))
    except sa_exc.IntegrityError:
        raise InvalidSubscriber("an address was added by someone else during this import", "run it again") from None
    return results


_COLUMNS = [f.name for f in dataclasses.fields(Subscriber)]


def _subscriber(row: Row[Any]) -> Subscriber:
    values = {name: getattr(row, name) for name in _COLUMNS}
    values.update(
        rubrics=split_stored(row.rubrics), created_at=as_utc(row.created_at), updated_at=as_utc(row.updated_at)
    )
    return Subscriber(**values)
