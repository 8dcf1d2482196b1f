"""What came back, taken in: each message attributed by its signed tag, classified, recorded once in
`bounce_events`, and the reader's state changed where it must be, with its consent row, in one
transaction.

    hard        → the reader is bounced at once
    soft        → their score decays (half-life), gains 1 (once per edition); at the threshold: bounced
    complaint   → unsubscribed at once, the reason "complaint" on the consent row
    delayed, auto-reply → recorded, nothing changes

A message without a tag our keys signed is not ours to act on: nothing is recorded (a forged bounce
cannot bounce anyone), and `digest bounces fetch` leaves it where it was. The same message read twice
(its Message-ID, else its bytes, with its tag) is recorded once, and changes nothing the second time.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from digest.core.clock import Clock
from digest.core.config import Bounces
from digest.delivery.bounces.classify import Finding, classify
from digest.delivery.bounces.reading import Incoming, bounded
from digest.delivery.bounces.tags import Tagged, VerpTags
from digest.delivery.schema import bounce_events
from subscribers.consent import Origin
from subscribers.mailin import header_fields
from subscribers.rows import as_utc
from subscribers.schema import subscribers
from subscribers.store import Store
from subscribers.tokens import Tokens

# What became of one message: taken in (recorded), seen before, or left alone.
RECORDED, AGAIN, UNATTRIBUTED, UNRECOGNISED, GONE = "recorded", "again", "unattributed", "unrecognised", "gone"


@dataclass(frozen=True)
class Taken:
    outcome: str  # recorded, again, unattributed (no valid tag), unrecognised (no bounce we know), gone (reader removed)
    source: str
    finding: Finding | None = None
    tagged: Tagged | None = None
    email: str | None = None
    change: str | None = None  # the reader's new status, when it changed: bounced, unsubscribed
    score: float | None = None  # the soft-bounce score after a soft bounce

    @property
    def processed(self) -> bool:
        """Whether the message is dealt with (a mailbox may file it away); else it stays for a person."""
        return self.outcome in (RECORDED, AGAIN, GONE)


class BounceLedger:
    def __init__(self, bounces: Bounces, store: Store, tokens: Tokens, clock: Clock | None = None,
                 command: str = "digest bounces read") -> None:
        self.bounces = bounces
        self.store = store
        self.tags = VerpTags(tokens, bounces)
        self.clock = clock or Clock()
        self.command = command

    def take(self, incoming: Incoming) -> Taken:
        head = bounded(incoming.raw)
        tagged = self.tags.find(head)
        if tagged is None:
            return Taken(UNATTRIBUTED, incoming.source)
        finding = classify(head)
        if not finding.acted_on:
            return Taken(UNRECOGNISED, incoming.source, finding, tagged)
        with self.store.engine.begin() as conn:
            reader = conn.execute(select(subscribers.c.email, subscribers.c.status, subscribers.c.bounce_score,
                                         subscribers.c.bounce_score_at)
                                  .where(subscribers.c.id == tagged.subscriber_id)).first()
            if reader is None:
                return Taken(GONE, incoming.source, finding, tagged)
            now = self.clock.now()
            counted = finding.kind == "soft" and not self._struck(conn, tagged)
            try:
                with conn.begin_nested():
                    conn.execute(insert(bounce_events).values(
                        key=_key(head, tagged), received_at=now, edition=tagged.edition,
                        subscriber_id=tagged.subscriber_id, kind=finding.kind, status=finding.status,
                        diagnostic=finding.diagnostic or None, source=incoming.source[:300]))
            except IntegrityError:
                return Taken(AGAIN, incoming.source, finding, tagged, reader.email)
            change, score = self._apply(conn, tagged, finding, reader.status, counted,
                                        reader.bounce_score, reader.bounce_score_at, now)
        return Taken(RECORDED, incoming.source, finding, tagged, reader.email, change, score)

    def _struck(self, conn: Connection, tagged: Tagged) -> bool:
        """Whether this reader's message of this edition bounced already: one strike per message."""
        return conn.execute(select(func.count()).select_from(bounce_events).where(
            bounce_events.c.subscriber_id == tagged.subscriber_id, bounce_events.c.edition == tagged.edition,
            bounce_events.c.kind.in_(("soft", "hard")))).scalar_one() > 0

    def _apply(self, conn: Connection, tagged: Tagged, finding: Finding, status: str, counted: bool,
               score: float, score_at: datetime | None, now: datetime) -> tuple[str | None, float | None]:
        store = self.store.using(conn)
        detail = {"edition": tagged.edition, "kind": finding.kind, "dsn_status": finding.status,
                  "diagnostic": finding.diagnostic[:200]}
        if finding.kind == "complaint":
            # A complaint withdraws consent: it stands over a bounce too (a reset must not undo it).
            if status in ("active", "bounced") and store.set_status(
                    tagged.subscriber_id, "unsubscribed", Origin("feedback-loop", self.command),
                    {"reason": "complaint", "edition": tagged.edition, "feedback_type": finding.diagnostic}):
                return "unsubscribed", None
            return None, None
        if finding.kind == "hard":
            if status == "active" and store.set_status(tagged.subscriber_id, "bounced",
                                                       Origin("delivery", self.command), detail):
                return "bounced", None
            return None, None
        if finding.kind != "soft" or not counted:
            return None, None
        score = self.decayed(score, score_at, now) + 1.0
        conn.execute(update(subscribers).where(subscribers.c.id == tagged.subscriber_id)
                     .values(bounce_score=score, bounce_score_at=now))
        if score >= self.bounces.soft_threshold and status == "active" and store.set_status(
                tagged.subscriber_id, "bounced", Origin("delivery", self.command),
                {**detail, "reason": "soft bounces", "score": round(score, 3)}):
            return "bounced", score
        return None, score

    def decayed(self, score: float, since: datetime | None, now: datetime) -> float:
        """The score as it stands at `now`: halved every soft_half_life_days since it was last set."""
        if since is None or score <= 0:
            return 0.0
        days = max(0.0, (now - as_utc(since)).total_seconds() / 86400)
        return float(score * 0.5 ** (days / self.bounces.soft_half_life_days))


def _key(head: bytes, tagged: Tagged) -> str:
    """The message's identity: its Message-ID (the same message from a pipe and from the mailbox),
    else its bytes; with the tag, so that one Message-ID can never stand for two readers."""
    message_id = header_fields(head, ("message-id",)).get("message-id", "").strip()
    identity = message_id.encode() if message_id else hashlib.sha256(head).digest()
    who = f"{tagged.subscriber_id}/{tagged.edition}".encode()
    return hashlib.sha256(identity + b"\x00" + who).hexdigest()
