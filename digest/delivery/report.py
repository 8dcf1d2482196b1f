"""`digest report`: what each edition's send came to, as a mailbox provider sees a sender. Gmail and
Yahoo want complaints under 0.3 % of what was sent (and a sender well under it: a warning past 0.1 %),
and no mail to dead addresses.

    sent          rows the relay accepted
    hard          refused at the send (5xx to RCPT), or bounced hard after it (distinct readers)
    soft          readers whose message bounced soft after the send
    complaints    readers who reported it as spam (feedback loops)
    unsubscribes  readers of it who unsubscribed before the next edition was enqueued (complaints included)
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, and_, func, select

from digest.delivery.schema import bounce_events, deliveries, editions
from subscribers.schema import consent_events, subscribers
from subscribers.store import Store, as_utc

COMPLAINTS_WARN = 0.001  # 0.1 %: keep under it
COMPLAINTS_LIMIT = 0.003  # 0.3 %: Gmail's and Yahoo's line


@dataclass(frozen=True)
class EditionReport:
    edition: str
    day: date
    enqueued_at: datetime
    sent: int
    refused: int  # hard bounces at the send
    hard: int  # hard bounces after it
    soft: int
    complaints: int
    unsubscribes: int

    @property
    def bounced_hard(self) -> int:
        return self.refused + self.hard

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0

    @property
    def level(self) -> str:
        """ok, warning (past 0.1 %) or over (at or past 0.3 %)."""
        if self.complaint_rate >= COMPLAINTS_LIMIT:
            return "over"
        return "warning" if self.complaint_rate > COMPLAINTS_WARN else "ok"


def reports(store: Store, list_id: str, day: date | None = None) -> list[EditionReport]:
    """Each edition of the newsletter (of one day, or the last seven), newest first."""
    with store.engine.connect() as conn:
        every = conn.execute(select(editions.c.key, editions.c.day, editions.c.enqueued_at)
                             .where(editions.c.list_id == list_id)
                             .order_by(editions.c.day, editions.c.revision)).all()
        out = []
        for i, row in enumerate(every):
            if day is not None and row.day != day:
                continue
            until = as_utc(every[i + 1].enqueued_at) if i + 1 < len(every) else None
            out.append(_report(conn, row.key, row.day, as_utc(row.enqueued_at), until))
    out.reverse()
    return out if day is not None else out[:7]


def _report(conn: Connection, key: str, day: date, enqueued_at: datetime, until: datetime | None) -> EditionReport:
    d, b = deliveries.c, bounce_events.c
    states: dict[str, int] = dict(conn.execute(select(d.status, func.count()).where(d.edition == key).group_by(d.status)).tuples().all())

    def readers(kind: str) -> int:
        return conn.execute(select(func.count(func.distinct(b.subscriber_id)))
                            .where(b.edition == key, b.kind == kind)).scalar_one()

    left = select(func.count(func.distinct(subscribers.c.id))).select_from(consent_events) \
        .join(subscribers, subscribers.c.email == consent_events.c.email) \
        .join(deliveries, and_(d.subscriber_id == subscribers.c.id, d.edition == key, d.status == "sent")) \
        .where(consent_events.c.event == "unsubscribed", consent_events.c.at >= d.updated_at)
    if until is not None:
        left = left.where(consent_events.c.at < until)
    return EditionReport(key, day, enqueued_at, sent=states.get("sent", 0), refused=states.get("bounced", 0),
                         hard=readers("hard"), soft=readers("soft"), complaints=readers("complaint"),
                         unsubscribes=conn.execute(left).scalar_one())
