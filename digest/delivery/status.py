"""Who got an edition and who did not: its rows counted by state, the pending ones by the hour they
are due, the workers holding leases, and the readers deferred or failed with their last reply."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select

from digest.delivery.queue import STATES, UNSENT
from digest.delivery.schema import deliveries, editions
from subscribers.schema import subscribers
from subscribers.store import Store, as_utc


@dataclass(frozen=True)
class EditionState:
    key: str
    day: date
    revision: int
    status: str  # open | replaced
    enqueued_at: datetime
    counts: dict[str, int]
    due_by_hour: list[tuple[datetime, int]]  # rows not sent yet, by the hour (UTC) they are due
    leases: list[tuple[str, int, datetime]]  # worker, rows held, lease until


@dataclass(frozen=True)
class Unsent:
    email: str
    status: str
    attempts: int
    code: int | None
    reply: str | None
    due: datetime


def states(store: Store, list_id: str, day: date | None = None) -> list[EditionState]:
    """Each edition of the newsletter (of one day, or the last seven), newest first."""
    with store.engine.connect() as conn:
        query = select(editions).where(editions.c.list_id == list_id)
        query = query.where(editions.c.day == day) if day else query
        found = conn.execute(query.order_by(editions.c.day.desc(), editions.c.revision.desc()).limit(7)).all()
        out = []
        for row in found:
            d = deliveries.c
            counts = {status: n for status, n in conn.execute(select(d.status, func.count()).where(d.edition == row.key)
                                                              .group_by(d.status)).all()}
            hours: Counter[datetime] = Counter()
            for moment, n in conn.execute(select(d.not_before, func.count()).where(
                    d.edition == row.key, d.status.in_(UNSENT)).group_by(d.not_before)).all():
                hours[as_utc(moment).replace(minute=0, second=0, microsecond=0)] += n
            leases = [(owner, n, as_utc(until)) for owner, n, until in conn.execute(
                select(d.lease_owner, func.count(), func.max(d.lease_expires))
                .where(d.edition == row.key, d.status == "leased").group_by(d.lease_owner)).all()]
            out.append(EditionState(row.key, row.day, row.revision, row.status, as_utc(row.enqueued_at),
                                    {s: counts.get(s, 0) for s in STATES}, sorted(hours.items()), leases))
    return out


def unsent(store: Store, edition: str, status: str, limit: int = 1000) -> list[Unsent]:
    """The readers of an edition in one state (deferred, failed, bounced …), with their last reply."""
    d = deliveries.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(subscribers.c.email, d.status, d.attempts, d.last_code, d.last_error, d.not_before)
            .join(subscribers, subscribers.c.id == d.subscriber_id)
            .where(d.edition == edition, d.status == status).order_by(subscribers.c.email).limit(limit)).all()
    return [Unsent(r.email, r.status, r.attempts, r.last_code, r.last_error, as_utc(r.not_before)) for r in rows]
