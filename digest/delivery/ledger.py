"""The delivery ledger: one row per (edition, subscriber), so that no run skips or doubles a reader.

    pending ──▶ sending ──▶ sent
                   │──────▶ failed     (5xx: permanent; the subscriber is marked bounced)
                   └──────▶ deferred   (4xx, dropped connection, deadline: retried, then due at not_before)

A row is `sending` only while its SMTP transaction runs, and each change is committed at once: after
a crash, the rows left in `sending` are the only messages that may have gone out unrecorded (at most
one per connection), and they are the only ones a new run can send twice.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import Select, and_, bindparam, func, insert, literal, or_, select, update
from sqlalchemy.engine import Connection

from digest.delivery.schema import deliveries
from subscribers.schema import subscribers
from subscribers.store import Store

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Due:
    """A ledger row that is due, with what is needed to address its message."""

    subscriber_id: int
    email: str
    name: str
    locale: str
    rubrics: str  # as stored: sorted keys joined with ","
    attempts: int


@dataclass(frozen=True)
class Backlog:
    """Where an edition stands for its active subscribers, read without changing anything."""

    new: int  # active subscribers with no row for this edition yet
    due: int  # pending, or deferred and due again now
    in_flight: int  # `sending`: left by a killed run, or being sent by a run right now
    sent: int
    owed: int  # pending + deferred + sending: what the edition still owes (due now or later)
    next_due: datetime | None

    @property
    def would_send(self) -> int:
        """What a run started now would send."""
        return self.new + self.due + self.in_flight

    @property
    def idle(self) -> bool:
        return self.would_send == 0


class Ledger:
    """One edition's rows, on the subscribers' store (a subscriber's state changes through it)."""

    def __init__(self, store: Store, edition: str) -> None:
        self.store = store
        self.engine = store.engine
        self.edition = edition
        self._conn: Connection | None = None
        # One statement per transition, built once: each message costs two small committed
        # updates, not two rounds of SQL construction.
        row = update(deliveries).where(deliveries.c.edition == bindparam("e"), deliveries.c.subscriber_id == bindparam("sid"))
        self._sending = row.values(status="sending", message_id=bindparam("mid"), updated_at=bindparam("now"),
                                   attempts=deliveries.c.attempts + 1)
        self._outcome = row.values(status=bindparam("st"), last_code=bindparam("code"), last_error=bindparam("err"),
                                   not_before=bindparam("at"), updated_at=bindparam("now"))

    @property
    def conn(self) -> Connection:
        """One connection for the run; every change is its own committed transaction."""
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def read(self, query: Callable[[Ledger], T]) -> T:
        """One read-only look (``ledger.read(Ledger.backlog)``), its connection closed after."""
        try:
            return query(self)
        finally:
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- a run's start ------------------------------------------------------------------------------
    def prepare(self) -> int:
        """A pending row for every active subscriber who has none for this edition yet; set-based, so
        200,000 subscribers never pass through Python. Returns how many rows it added."""
        now = utcnow()
        missing = (
            select(
                literal(self.edition, deliveries.c.edition.type).label("edition"),
                subscribers.c.id,
                literal("pending", deliveries.c.status.type).label("status"),
                literal(0, deliveries.c.attempts.type).label("attempts"),
                literal(now, deliveries.c.updated_at.type).label("updated_at"),
                literal(now, deliveries.c.not_before.type).label("not_before"),
            )
            .where(subscribers.c.status == "active")
            .where(~select(deliveries.c.subscriber_id)
                   .where(and_(deliveries.c.edition == self.edition, deliveries.c.subscriber_id == subscribers.c.id))
                   .exists())
        )
        result = self.conn.execute(
            insert(deliveries).from_select(["edition", "subscriber_id", "status", "attempts", "updated_at", "not_before"],
                                           missing)
        )
        self.conn.commit()
        return max(result.rowcount or 0, 0)

    def recover(self) -> int:
        """Rows a killed run left in `sending`: their message may or may not have gone; send again."""
        result = self.conn.execute(
            update(deliveries)
            .where(deliveries.c.edition == self.edition, deliveries.c.status == "sending")
            .values(status="pending", updated_at=utcnow())
        )
        self.conn.commit()
        return max(result.rowcount or 0, 0)

    def counts(self) -> dict[str, int]:
        rows = self.conn.execute(
            select(deliveries.c.status, func.count()).where(deliveries.c.edition == self.edition).group_by(deliveries.c.status)
        )
        out = {"pending": 0, "sending": 0, "sent": 0, "deferred": 0, "failed": 0}
        out.update({status: count for status, count in rows})
        return out

    def backlog(self) -> Backlog:
        counts = self.active_counts()
        missing = self.conn.execute(
            select(func.count()).select_from(subscribers).where(subscribers.c.status == "active")
            .where(~select(deliveries.c.subscriber_id)
                   .where(and_(deliveries.c.edition == self.edition, deliveries.c.subscriber_id == subscribers.c.id))
                   .exists())
        ).scalar_one()
        return Backlog(new=missing, due=self.due_count(), in_flight=counts["sending"], sent=counts["sent"],
                       owed=counts["pending"] + counts["deferred"] + counts["sending"], next_due=self.next_due())

    def active_counts(self) -> dict[str, int]:
        """Rows by status, for subscribers still active (a row left pending for someone who has
        unsubscribed since is owed to nobody)."""
        rows = self.conn.execute(
            select(deliveries.c.status, func.count())
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(deliveries.c.edition == self.edition, subscribers.c.status == "active")
            .group_by(deliveries.c.status)
        )
        out = {"pending": 0, "sending": 0, "sent": 0, "deferred": 0, "failed": 0}
        out.update({status: count for status, count in rows})
        return out

    def next_due(self) -> datetime | None:
        """When the earliest deferred message of this edition is due again (active subscribers only)."""
        value = self.conn.execute(
            select(func.min(deliveries.c.not_before))
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(deliveries.c.edition == self.edition, deliveries.c.status == "deferred", subscribers.c.status == "active")
        ).scalar_one_or_none()
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # SQLite gives back naive UTC
        return value

    def due_count(self, now: datetime | None = None) -> int:
        return self.conn.execute(select(func.count()).select_from(self._due_query(now).subquery())).scalar_one()

    def _due_query(self, now: datetime | None, after_id: int = 0) -> Select[int, str, str, str, str, int]:
        now = now or utcnow()
        return (
            select(deliveries.c.subscriber_id, subscribers.c.email, subscribers.c.name, subscribers.c.locale,
                   subscribers.c.rubrics, deliveries.c.attempts)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(deliveries.c.edition == self.edition)
            .where(subscribers.c.status == "active")
            .where(or_(deliveries.c.status == "pending",
                       and_(deliveries.c.status == "deferred",
                            or_(deliveries.c.not_before.is_(None), deliveries.c.not_before <= now))))
            .where(deliveries.c.subscriber_id > after_id)
            .order_by(deliveries.c.subscriber_id)
        )

    def due(self, batch: int = 500, now: datetime | None = None) -> Iterator[Due]:
        """Due rows in subscriber order, read a batch at a time (keyset pagination): memory stays flat
        however large the audience."""
        now = now or utcnow()
        after = 0
        while True:
            with self.engine.connect() as reader:
                rows = reader.execute(self._due_query(now, after).limit(batch)).all()
            if not rows:
                return
            for row in rows:
                yield Due(*row)
            after = rows[-1][0]

    # -- one message's life -------------------------------------------------------------------------
    def _record(self, status: str, subscriber_id: int, code: int | None, error: str | None, at: datetime | None) -> None:
        self.conn.execute(self._outcome, {"e": self.edition, "sid": subscriber_id, "st": status, "code": code,
                                          "err": error[:500] if error else None, "at": at or utcnow(), "now": utcnow()})

    def sending(self, subscriber_id: int, message_id: str) -> None:
        self.conn.execute(self._sending, {"e": self.edition, "sid": subscriber_id, "mid": message_id, "now": utcnow()})
        self.conn.commit()

    def sent(self, subscriber_id: int, code: int | None) -> None:
        self._record("sent", subscriber_id, code, None, None)
        self.conn.commit()

    def deferred(self, subscriber_id: int, code: int | None, error: str, retry_at: datetime) -> None:
        self._record("deferred", subscriber_id, code, error, retry_at)
        self.conn.commit()

    def failed(self, subscriber_id: int, code: int | None, error: str, bounce: bool) -> None:
        """Permanent: this edition will not be sent to them again; a refused address is also bounced."""
        self._record("failed", subscriber_id, code, error, None)
        if bounce:
            self.store.using(self.conn).set_status(subscriber_id, "bounced")
        self.conn.commit()

    def later(self, minutes: float) -> datetime:
        return utcnow() + timedelta(minutes=minutes)
