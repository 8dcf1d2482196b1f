"""A group of outcomes written as one statement, through the driver: the step a sending worker takes
once per commit, for as many messages as finished while the previous commit ran (loop.Ledger).

SQLAlchemy Core binds an executemany row by row (about 50 µs a row on PostgreSQL, where psycopg then
sends one Bind/Execute per row), and its execution context costs more than the statement itself for
a group of a few rows. Here the values go to the driver's own connection as they are:

    PostgreSQL  one UPDATE … FROM (VALUES …): one statement and one round trip for the group, prepared
                once per group size (psycopg's arrays cost 300 µs to bind, in Python)
    SQLite      the driver's own executemany of one prepared UPDATE (a loop in C)
    any other   SQLAlchemy Core's executemany of the same UPDATE

A row is written only while this worker still holds its lease: a row whose lease ran out and was
claimed by another worker is left to that worker.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Dialect, Engine, and_, bindparam, update
from sqlalchemy.exc import DBAPIError

from digest.delivery.schema import deliveries
from subscribers.store import Store

_SET = ("status = {st}, last_code = {code}, last_error = {err}, not_before = {at}, updated_at = {now}, "
        "message_id = {mid}, choice = {choice}, lease_owner = NULL, lease_expires = NULL")

_POSTGRESQL = (
    "UPDATE deliveries AS d SET " + _SET.format(st="v.st", code="v.code", err="v.err", at="v.at", now="v.now",
                                                mid="v.mid", choice="v.choice")
    + " FROM (VALUES {values}) AS v(e, sid, st, code, err, at, now, mid, choice)"
      " WHERE d.edition = v.e AND d.subscriber_id = v.sid AND d.lease_owner = {owner}"
)

_EACH = (
    "UPDATE deliveries SET " + _SET.format(st="?", code="?", err="?", at="?", now="?", mid="?", choice="?")
    + " WHERE edition = ? AND subscriber_id = ? AND lease_owner = ?"
)

# One outcome, as the statements take it: edition, subscriber, status, code, error, due again, now,
# Message-ID, the reader's choice.
Row = tuple[str, int, str, int | None, str | None, datetime, datetime, str, str]


class OutcomeWriter:
    GROUP = 500  # rows a statement takes at most (PostgreSQL binds at most 65,535 values)

    def __init__(self, dialect: Dialect, worker: str) -> None:
        self.worker = worker
        self.postgresql = dialect.name == "postgresql" and dialect.paramstyle in ("format", "pyformat")
        self.sqlite = dialect.name == "sqlite" and dialect.paramstyle == "qmark"
        self.raw = self.postgresql or self.sqlite  # written through the driver's own connection
        # A datetime as the column's type writes it (SQLite: the text SQLAlchemy compares with).
        processor = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
        self._when: Callable[[datetime], Any] = processor or (lambda value: value)
        self._statements: dict[tuple[int, bool], str] = {}

    def write_raw(self, dbapi_connection: Any, rows: Sequence[Row]) -> None:
        """Write the outcomes on the driver's connection, in its transaction (the caller commits)."""
        cursor = dbapi_connection.cursor()
        try:
            for statement, parameters in self.statements_for(rows):
                if self.postgresql:
                    cursor.execute(statement, parameters)
                else:
                    cursor.executemany(statement, parameters)
        finally:
            cursor.close()

    def write(self, conn: Connection, rows: Sequence[Row]) -> None:
        """Write the outcomes in `conn`'s transaction (the caller commits)."""
        if self.raw:
            for statement, parameters in self.statements_for(rows):
                conn.exec_driver_sql(statement, parameters)
        elif rows:
            conn.execute(_CORE, [{"e": edition, "sid": sid, "me": self.worker, "st": st, "code": code, "err": err,
                                  "at": at, "now": now, "mid": mid, "choice": choice}
                                 for edition, sid, st, code, err, at, now, mid, choice in rows])

    def statements_for(self, rows: Sequence[Row], native: bool = False) -> Iterator[tuple[str, Any]]:
        """The statements and their parameters; `native`: PostgreSQL's own $1, $2 … placeholders (for
        psycopg's raw cursor), where psycopg would otherwise parse %s out of the statement on each
        execution (it keeps the parse only for statements of at most 50 parameters)."""
        when = self._when
        for start in range(0, len(rows), self.GROUP):
            part = rows[start:start + self.GROUP]
            if self.postgresql:
                yield self._values(len(part), native), (*itertools.chain.from_iterable(part), self.worker)
            else:
                yield _EACH, [(st, code, err, when(at), when(now), mid, choice, edition, sid, self.worker)
                              for edition, sid, st, code, err, at, now, mid, choice in part]

    def _values(self, count: int, native: bool) -> str:
        """The PostgreSQL statement for `count` rows: made once per count, and prepared by the driver
        once used a few times (the first row's casts type the VALUES list)."""
        if (count, native) not in self._statements:
            casts = ("::varchar", "::int", "::varchar", "::int", "::text", "::timestamptz", "::timestamptz", "::varchar",
                     "::varchar")
            width = len(casts)
            marks = [f"${n}" for n in range(1, count * width + 2)] if native else ["%s"] * (count * width + 1)
            rows = [", ".join(mark + cast for mark, cast in zip(marks, casts))]
            rows += [", ".join(marks[start:start + width]) for start in range(width, count * width, width)]
            values = ", ".join(f"({row})" for row in rows)
            self._statements[count, native] = _POSTGRESQL.replace("{values}", values).replace("{owner}", marks[-1])
        return self._statements[count, native]


_CORE = update(deliveries).where(
    and_(deliveries.c.edition == bindparam("e"), deliveries.c.subscriber_id == bindparam("sid"),
         deliveries.c.lease_owner == bindparam("me"))
).values(status=bindparam("st"), last_code=bindparam("code"), last_error=bindparam("err"), not_before=bindparam("at"),
         updated_at=bindparam("now"), message_id=bindparam("mid"), choice=bindparam("choice"), lease_owner=None,
         lease_expires=None)


class Outcomes:
    """A worker's outcomes, written to the ledger on a connection of their own: the driver's, under
    SQLAlchemy's; on PostgreSQL (psycopg) also its asynchronous one, so that the event loop sends on
    while the server commits. A group with a bounce goes through SQLAlchemy, the reader bounced in
    the same transaction."""

    def __init__(self, store: Store, worker: str) -> None:
        self.store = store
        self.engine = store.engine
        self.writer = OutcomeWriter(self.engine.dialect, worker)
        self.writes_async = self.writer.postgresql and self.engine.dialect.driver == "psycopg"
        self._conn: Connection | None = None
        self._aconn: Any = None  # psycopg.AsyncConnection, made on first use
        # Held while outcomes are written: the heartbeat's lease renewal waits for it. The two lock
        # the same rows in different orders (two such transactions at once deadlock on PostgreSQL),
        # and a renewal blocking the loop while an asynchronous write is open would wait forever.
        self.open = asyncio.Lock()

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def _write(self, rows: list[Row], bounced: list[int]) -> None:
        """The outcomes and the bounces, committed (on the event loop: by write_async, under `open`)."""
        conn = self.conn
        if self.writer.raw and not bounced:
            self._write_raw(conn, rows)
            return
        try:
            self.writer.write(conn, rows)
            for subscriber_id in bounced:
                self.store.using(conn).set_status(subscriber_id, "bounced")
            conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise

    async def write_async(self, rows: list[Row], bounced: list[int]) -> None:
        """The outcomes and the bounces, committed: on the event loop without blocking it where the driver can (writes_async)."""
        async with self.open:
            if not self.writes_async or bounced:
                self._write(rows, bounced)
                return
            dbapi = self.engine.dialect.loaded_dbapi
            try:
                if self._aconn is None or self._aconn.closed:
                    self._aconn = await _async_connection(self.engine)
                statements = list(self.writer.statements_for(rows, native=True))
                async with _raw_cursor(self._aconn) as cursor:
                    if len(statements) == 1:  # its own transaction (autocommit): one round trip, no COMMIT after
                        await cursor.execute(*statements[0])
                    else:
                        async with self._aconn.transaction():
                            for statement, parameters in statements:
                                await cursor.execute(statement, parameters)
            except dbapi.Error as exc:  # autocommit: nothing is left open (a block of several rolls back by itself)
                raise DBAPIError.instance(None, None, exc, dbapi.Error) from exc

    def _write_raw(self, conn: Connection, rows: list[Row]) -> None:
        """The common case, on the driver's connection under `conn`; its errors raised as SQLAlchemy's."""
        raw = conn.connection.dbapi_connection
        assert raw is not None  # a connection in use has its driver's
        dbapi = self.engine.dialect.loaded_dbapi
        try:
            self.writer.write_raw(raw, rows)
            raw.commit()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                raw.rollback()
            if not isinstance(exc, dbapi.Error):
                raise
            if self.engine.dialect.is_disconnect(exc, raw, None):
                conn.invalidate()
                self._conn = None
            raise DBAPIError.instance(None, None, exc, dbapi.Error) from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def aclose(self) -> None:
        self.close()
        if self._aconn is not None:
            with contextlib.suppress(Exception):
                await self._aconn.close()
            self._aconn = None


def _raw_cursor(connection: Any) -> Any:
    """A psycopg cursor that takes the statement as PostgreSQL does ($1, $2 …), unparsed."""
    import psycopg  # noqa: PLC0415 — the PostgreSQL extra, only where it is the database

    return psycopg.AsyncRawCursor(connection)


async def _async_connection(engine: Engine) -> Any:
    """An asynchronous psycopg connection to the engine's database."""
    import psycopg  # noqa: PLC0415 — the PostgreSQL extra, only where it is the database

    url = engine.url.set(drivername="postgresql")
    # Autocommit: a group's one statement is its own transaction, committed in the same round trip. Each
    # round trip waits for the event loop's turn, behind every connection's replies: two (the UPDATE,
    # then COMMIT) held each message's final dot about 5 ms on a busy worker.
    return await psycopg.AsyncConnection.connect(url.render_as_string(hide_password=False), autocommit=True)
