"""The subscriber store: who is on the list, in the SQL database the delivery ledger shares.

Every change of a reader's state writes its consent row here, in the same transaction (subscribers.consent);
a caller says how the change came with an Origin, and one that says nothing is recorded as the API.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, func, select
from sqlalchemy import exc as sa_exc

from digest.core.database import database_url, migrate, open_engine, sqlite_file, where
from digest.core.errors import InvalidSubscriber, StoreError
from subscribers import consent, signups
from subscribers.consent import API, DELIVERY, Event, Origin
from subscribers.keyed import Hasher
from subscribers.listing import LISTED, PAGE_ROWS, made, page_query
from subscribers.merging import DEFAULTS, PAGE, STATUS_EVENTS, Upserted, fields_given, merge_page, not_pending, pages
from subscribers.model import CONFIRMED, Subscriber
from subscribers.rows import as_utc, join_rubrics, now, split_stored
from subscribers.rows import find as _find
from subscribers.rows import subscriber as _subscriber
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
__all__ = ["UTC", "Store", "Upserted", "as_utc", "join_rubrics", "now", "page_query", "split_stored"]



class Store:
    """Subscribers over a SQLAlchemy engine (SQLite by default, PostgreSQL in principle).

    ``engine`` is public: the delivery ledger works on the same engine and tables.
    Inside ``with store.bulk() as tx:`` every call on ``tx`` shares one transaction.
    """

    def __init__(self, url: str | Engine) -> None:
        self.engine = url if isinstance(url, Engine) else open_engine(url)
        self._conn: Connection | None = None
        self.hasher: Hasher | None = None  # with_keys: what recognises an erased address
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
        bound.engine, bound._conn, bound.hasher = self.engine, conn, self.hasher
        return bound

    def with_keys(self, keys: Mapping[int, bytes], current: int) -> Store:
        """This store, able to recognise (and make) erased addresses' keyed hashes with the signing keys."""
        self.hasher = Hasher(keys, current)
        return self

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
        """Subscribers per status: every confirmed status, and pending ones when there are some."""
        counts = dict.fromkeys(CONFIRMED, 0)
        query = select(subscribers.c.status, func.count()).group_by(subscribers.c.status)
        with self._begin() as conn:
            counts.update({status: n for status, n in conn.execute(query)})
        return counts

    def iter_subscribers(self, status: str | None = None, batch: int = PAGE_ROWS) -> Iterator[Subscriber]:
        """Every subscriber (of one status) in id order, ``batch`` rows per query (see `iter_rows`)."""
        yield from made(self.iter_rows(LISTED, status, batch))

    def iter_rows(self, columns: Sequence[ColumnElement[Any]], status: str | None = None,
                  batch: int = PAGE_ROWS) -> Iterator[Sequence[Any]]:
        """These columns (the id first) of every subscriber (of one status) in id order, as rows (tuples):
        for a pass over the list that needs a few fields, not a Subscriber. Keyset pagination (id > last
        seen), each page its own short read: a pass streams a million rows without holding them, or a
        read snapshot, for the whole run, and each page costs the same wherever it is in the list."""
        if status is not None:
            status = check_status(status)
        last = 0
        while True:
            query = page_query(status, last, batch, columns)
            with self._begin() as conn:
                rows = conn.execute(query).all()
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1][0]

    def variants(self, who: ColumnElement[bool] | None = None) -> list[tuple[str, frozenset[str]]]:
        """The distinct (locale, rubrics) of active subscribers (of `who`: a rhythm, say): one
        rendered variant each."""
        query = (
            select(subscribers.c.locale, subscribers.c.rubrics)
            .where(subscribers.c.status == "active", *([] if who is None else [who]))
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
        by: Origin | None = None,
        delivery_time: str | None = None,
        cadence: str | None = None,
        weekday: str | None = None,
    ) -> Subscriber:
        """A new subscriber; InvalidSubscriber if a field is wrong, the address is on the list already, or
        its reader asked to be erased (only they can come back, through the sign-up form).
        ``delivery_time``: "HH:MM" where they live, or "asap"; None, the newsletter's hour. ``cadence``:
        daily (None) or weekly; ``weekday``: a day's name in English or French (None: the newsroom's day;
        given alone, it makes them weekly)."""
        fields = check_fields(email, name, locale, timezone, rubrics, not_pending(status),
                              delivery_time=delivery_time, cadence=cadence, weekday=weekday)
        by = by or API
        with self._begin() as conn:
            found = _find(conn, fields.email)
            if found is not None:
                hint = "they signed up and have not confirmed yet" if found.status == "pending" else None
                raise InvalidSubscriber(f"{fields.email} is a subscriber already", hint)
            if fields.email in consent.erased(conn, self.hasher, [fields.email]):
                raise InvalidSubscriber(f"{fields.email} was erased at the reader's request",
                                        "only they can subscribe again, through the sign-up form")
            subscriber = _insert(conn, {"email": fields.email, **fields_given(fields)}, created_at)
            event = "imported" if by.channel == "import" else "added"
            consent.record(conn, [consent.row(subscriber.email, event, by, subscriber.created_at, _choices(subscriber))])
            return subscriber

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
        by: Origin | None = None,
        delivery_time: str | None = None,
        cadence: str | None = None,
        weekday: str | None = None,
    ) -> Upserted:
        """Create or update one subscriber by address; see `merge` for the rules. ``delivery_time``:
        "HH:MM", "asap", or NEWSLETTER_HOUR to go back to the newsletter's (None: not given); ``cadence``
        and ``weekday`` as for `add`, weekday "" going back to the newsroom's day."""
        fields = check_fields(email, name, locale, timezone, rubrics, status, created_at, delivery_time=delivery_time,
                              cadence=cadence, weekday=weekday)
        return self.merge([fields], default_locale, default_timezone, by)[0]

    def merge(self, rows: Iterable[Fields], default_locale: str = "fr", default_timezone: str = "UTC",
              by: Origin | None = None) -> list[Upserted]:
        """Create or update checked rows by address, a page at a time (imports of 200,000 rows).

        A field that is None is "not given": an existing subscriber keeps theirs, a new one gets the
        default. Consent comes first: someone unsubscribed, bounced or pending is never made active here
        (the status is kept and reported as ``kept_status``); active → unsubscribed/bounced is applied;
        an erased address is not written at all ("erased"). ``created_at`` counts only when creating:
        the date someone subscribed is history. Nothing changed, nothing written: ``updated_at`` stays.
        Each row created or changed writes its consent row, as coming ``by`` (default: the API).
        """
        defaults = {**DEFAULTS, "locale": check_locale(default_locale), "timezone": check_timezone(default_timezone)}
        results: list[Upserted] = []
        with self._begin() as conn:
            for page in pages(rows, PAGE):
                results.extend(merge_page(conn, page, defaults, by or API, self.hasher))
        return results

    def set_status(self, email_or_id: str | int, status: str, by: Origin | None = None,
                   detail: Mapping[str, Any] | None = None) -> bool:
        """Set the status (and updated_at); True if it changed, False if it was so already or nobody
        matched. A bounce that names no origin is the delivery's (the ledger records bounces).
        `detail` goes on the consent row beside the change (a complaint's reason, the edition)."""
        status = not_pending(check_status(status))
        where = self._which(email_or_id)
        if where is None:
            return False
        with self._begin() as conn:
            found = conn.execute(select(subscribers.c.email, subscribers.c.status).where(where)).first()
            if found is None or found.status == status:
                return False
            stamp = now()
            query = subscribers.update().where(where, subscribers.c.status == found.status)
            if conn.execute(query.values(status=status, updated_at=stamp)).rowcount == 0:
                return False  # changed by someone else meanwhile
            origin = by or (DELIVERY if status == "bounced" else API)
            consent.record(conn, [consent.row(found.email, STATUS_EVENTS[status], origin, stamp,
                                              {**(detail or {}), "status": status, "was": found.status})])
        return True

    def reset_bounces(self, email: str, by: Origin | None = None) -> tuple[str, float] | None:
        """Clear a reader's bounce state, as an editor does once an address works again: the soft-bounce
        score back to 0 and, if they were bounced, active again. A reader who unsubscribed (a complaint
        included) stays so: only they can come back. (status before, score before), or None for nobody."""
        address = normalise_email(email)
        with self._begin() as conn:
            found = conn.execute(select(subscribers.c.status, subscribers.c.bounce_score)
                                 .where(subscribers.c.email == address)).first()
            if found is None:
                return None
            status = "active" if found.status == "bounced" else found.status
            stamp = now()
            conn.execute(subscribers.update().where(subscribers.c.email == address).values(
                status=status, bounce_score=0.0, bounce_score_at=None, updated_at=stamp))
            consent.record(conn, [consent.row(address, "reset", by or API, stamp,
                                              {"status": status, "was": found.status, "score_was": round(found.bounce_score, 3)})])
        return found.status, found.bounce_score

    def unsubscribe(self, email_or_id: str | int, by: Origin | None = None) -> bool:
        """Idempotent: True the first time, False when already unsubscribed (or unknown)."""
        return self.set_status(email_or_id, "unsubscribed", by)

    def remove(self, email: str, by: Origin | None = None) -> bool:
        """Delete a subscriber and, by cascade, their ledger rows; True if there was one. Their consent
        history stays, with this removal on it (`erase` deletes it)."""
        where = self._which(email)
        if where is None:
            return False
        with self._begin() as conn:
            found = conn.execute(select(subscribers.c.email).where(where)).first()
            if found is None or conn.execute(subscribers.delete().where(where)).rowcount == 0:
                return False
            consent.record(conn, [consent.row(found.email, "removed", by or API, now())])
        return True

    # -- consent and the reader's rights ------------------------------------------------------------

    def history(self, email: str) -> list[Event]:
        """Every change of this address's state, oldest first (empty for an unknown or erased one)."""
        with self._begin() as conn:
            return consent.history(conn, normalise_email(email))

    def iter_history(self, batch: int = 1000) -> Iterator[tuple[str, Event]]:
        """Every consent row, (address, event), in the order they were written, ``batch`` rows per query."""
        last = 0
        while True:
            with self._begin() as conn:
                rows = consent.page(conn, last, batch)
            yield from ((email, event) for _, email, event in rows)
            if len(rows) < batch:
                return
            last = rows[-1][0]

    def erased_at(self, email: str) -> datetime | None:
        """When this address was erased, if it was (needs the keys: see `with_keys`)."""
        address = normalise_email(email)
        with self._begin() as conn:
            return consent.erased(conn, self.hasher, [address]).get(address)

    def erase(self, email: str, by: Origin | None = None) -> bool:
        """Delete the reader's record, sign-ups, ledger rows and history, keeping only a keyed hash of the
        address, so that an import does not add them back silently. True if there was anything to erase."""
        if self.hasher is None:
            raise StoreError("erasing needs the signing keys (the erased address is kept as a keyed hash)")
        address = normalise_email(email)
        with self._begin() as conn:
            gone = conn.execute(subscribers.delete().where(subscribers.c.email == address)).rowcount > 0
            had_history = bool(consent.history(conn, address))
            consent.forget(conn, [address])
            consent.mark_erased(conn, self.hasher, address, (by or API).channel, now())
        return gone or had_history

    # -- sign-ups ----------------------------------------------------------------------------------

    def request_signup(self, request: signups.Request, by: Origin, limits: signups.Limits,
                       at: datetime | None = None) -> signups.Requested:
        """A sign-up from the form, within the limits it shares with every process (see subscribers.signups)."""
        if self.hasher is None:
            raise StoreError("sign-ups need the signing keys (their limits are kept as keyed hashes)")
        try:
            with self._begin() as conn:
                return signups.request(conn, self.hasher, request, by, limits, at or now())
        except signups.Limited as limited:  # the transaction is rolled back: a refusal counts nothing
            return signups.Requested("limited", limit=limited.rule)

    def pending_signup(self, signup_id: int, at: datetime | None = None) -> signups.Pending | None:
        with self._begin() as conn:
            return signups.pending(conn, signup_id, at or now())

    def confirm_signup(self, signup_id: int, by: Origin, at: datetime | None = None) -> Subscriber | None:
        """The reader, active with the choices they signed up with; None if the sign-up is used or expired."""
        with self._begin() as conn:
            subscriber_id = signups.confirm(conn, self.hasher, signup_id, by, at or now())
            if subscriber_id is None:
                return None
            row = conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id)).first()
        return _subscriber(row) if row else None

    def purge_signups(self, at: datetime | None = None) -> int:
        """Remove expired sign-ups, and the pending readers (and their history) they leave; how many readers."""
        with self._begin() as conn:
            return signups.purge(conn, at or now())

    def _which(self, email_or_id: str | int) -> ColumnElement[bool] | None:
        if isinstance(email_or_id, bool):
            return None  # an int to Python, but neither an id nor an address
        if isinstance(email_or_id, int):
            return subscribers.c.id == email_or_id
        try:
            return subscribers.c.email == normalise_email(email_or_id)
        except InvalidSubscriber:
            return None


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


def _choices(subscriber: Subscriber) -> dict[str, Any]:
    choices: dict[str, Any] = {"status": subscriber.status, "locale": subscriber.locale, "timezone": subscriber.timezone,
               "rubrics": join_rubrics(subscriber.rubrics)}
    if subscriber.delivery_time is not None:
        choices["delivery_time"] = subscriber.delivery_time
    if subscriber.cadence != "daily":
        choices["cadence"] = subscriber.cadence
    if subscriber.weekday is not None:
        choices["weekday"] = subscriber.weekday
    return choices

