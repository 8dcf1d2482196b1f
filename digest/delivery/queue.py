"""The ledger is the queue: one row per (edition, subscriber) with its state, the earliest time it may
go (not_before), its attempts, its last reply and its lease. Any number of processes, on one machine
or many, share it: each claims a small batch of due rows (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite
serialises its writers), holds them under a lease it renews while it lives, and records each outcome
as it comes: committed with those that came while the previous commit ran (loop.Ledger), before the
connection that sent it takes another row.

A worker that dies leaves leases that expire (at once for a dead process of this machine): its rows
are claimed again, and the only messages that can go twice are those it had in flight, resent with
the same Message-ID. A reader never gets two editions at once: a row still unsent when the reader's
next edition is due is superseded.
"""
from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)

from digest.core.clock import Clock
from digest.delivery.backlog import Backlog
from digest.delivery.outcomes import Outcomes, Row
from digest.delivery.rows import among, has_it, insert_new, lineage, reached_before
from digest.delivery.schedule import due_at
from digest.delivery.schema import deliveries, editions
from subscribers.schema import subscribers
from subscribers.store import Store, as_utc

UNSENT = ("pending", "deferred")
STATES = ("pending", "leased", "sent", "deferred", "failed", "bounced", "superseded", "cancelled", "unneeded")
HOST = socket.gethostname()


def worker_id() -> str:
    """host:pid:random — a lease owner that a process of the same host can tell dead or alive."""
    return f"{HOST[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


class Claimed(NamedTuple):
    """A row this worker holds, with what it needs to address the reader's message (a tuple: a claim
    makes thousands a second)."""

    edition: str
    subscriber_id: int
    email: str
    name: str
    locale: str
    rubrics: str  # as stored: sorted keys joined with ","
    attempts: int  # this one included


class Entry(NamedTuple):
    """An outcome to record: the row's new state, the reply, when it is due again, its Message-ID, now."""

    row: Claimed
    status: str
    code: int | None
    error: str | None
    at: datetime
    message_id: str
    now: datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def _utc(value: Any) -> datetime | None:
    return as_utc(value) if isinstance(value, datetime) else None


class Queue:
    def __init__(self, store: Store, clock: Clock | None = None, worker: str | None = None,
                 lease_seconds: float = 30.0) -> None:
        self.store = store
        self.engine = store.engine
        self.clock = clock or Clock()
        self.worker = worker or worker_id()
        self.lease = timedelta(seconds=lease_seconds)
        self.outcomes = Outcomes(store, self.worker)  # the worker's outcomes, on their own connection

    def close(self) -> None:
        self.outcomes.close()

    async def aclose(self) -> None:
        await self.outcomes.aclose()

    # -- enqueue ----------------------------------------------------------------------------------
    def add_rows(self, edition: str, enqueued: datetime, hour: str | None,
                 who: ColumnElement[bool] | None = None, status: str = "pending") -> int:
        """A row (pending, unless `status` says) for every active subscriber (of `who`: a rhythm, a
        weekday) who has none for this edition yet, due at their hour (their own choice, else `hour`;
        "asap" or none: at `enqueued`). Set-based: one INSERT per distinct (zone, chosen hour), so a
        million readers never pass through Python. Each row keeps the reader's choice of language and
        rubrics.

        `status` "unneeded": rows that record that these readers need nothing of the edition (they
        had every story of it already); nothing is sent, and they are not new on the next run."""
        reached = reached_before(edition)
        missing = ~has_it(edition)
        active = subscribers.c.status == "active"
        if who is not None:
            active = and_(active, who)
        added = 0
        with self.engine.begin() as conn:
            pairs = conn.execute(select(subscribers.c.timezone, subscribers.c.delivery_time)
                                 .where(active, missing).distinct()).all()
            for zone, chosen in pairs:
                not_before = due_at(enqueued, zone, chosen or hour)
                same_hour = (subscribers.c.delivery_time.is_(None) if chosen is None
                             else subscribers.c.delivery_time == chosen)
                rows = select(literal(edition, deliveries.c.edition.type), subscribers.c.id,
                              literal(status, deliveries.c.status.type), literal(0, deliveries.c.attempts.type),
                              literal(not_before, deliveries.c.not_before.type),
                              literal(enqueued, deliveries.c.updated_at.type),
                              subscribers.c.locale + literal("|") + subscribers.c.rubrics,
                              ).where(active, ~reached, subscribers.c.timezone == zone, same_hour)
                # (SQLAlchemy keeps an INSERT's row count only when asked: psycopg's is gone with its cursor.)
                result = conn.execute(insert_new(conn, rows, missing).execution_options(preserve_rowcount=True))
                added += max(result.rowcount or 0, 0)
        if added:
            # The claims' plans depend on how many rows the edition has. Until autovacuum samples the
            # table (a minute or more later), PostgreSQL takes a new edition for a few rows, and each
            # claim walks all of them (an index on the edition, or a sort of every row due): 40 ms a
            # claim at a million rows instead of 16. Sampling it now costs 0.1 s at a million. SQLite
            # has no autovacuum: without statistics it always prefers (edition, status) to the due
            # rows' index and sorts every pending row for each claim; 0.3 s at a million.
            with self.engine.begin() as conn:
                conn.execute(text("ANALYZE deliveries"))
        return added

    def supersede(self, edition: str) -> int:
        """An edition replaced by a correction: its rows not yet sent will not be."""
        with self.engine.begin() as conn:
            result = conn.execute(update(deliveries).where(deliveries.c.edition == edition,
                                                           deliveries.c.status.in_(UNSENT))
                                  .values(status="superseded", updated_at=self.clock.now()))
        return max(result.rowcount or 0, 0)

    # -- claims and leases -------------------------------------------------------------------------
    def claim(self, limit: int, only: Iterable[str] | None = None) -> list[Claimed]:
        """Up to `limit` rows due now (or whose lease expired), leased to this worker; rows of readers
        who left since, or whose next edition is already due, are settled instead of handed out."""
        now = self.clock.now()
        self._expire_dead_owners(now)
        only = list(only) if only is not None else None
        with self.engine.begin() as conn:
            pairs = self._lease(conn, limit, now, only, expired=True)
            if len(pairs) < limit:
                pairs += self._lease(conn, limit - len(pairs), now, only, expired=False)
            if not pairs:
                return []
            rows = conn.execute(
                select(deliveries.c.edition, deliveries.c.subscriber_id, subscribers.c.email, subscribers.c.name,
                       subscribers.c.locale, subscribers.c.rubrics, deliveries.c.attempts, subscribers.c.status)
                .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                .where(among(pairs))
            ).all()
            active = [Claimed(*row[:7]) for row in rows if row[7] == "active"]
            gone = [(row[0], row[1]) for row in rows if row[7] != "active"]
            newer, older = lineage(conn, {row[0] for row in rows})
            stale = self._stale(conn, [(c.edition, c.subscriber_id) for c in active if c.edition in newer], now) \
                if newer else []
            self._settle(conn, gone, "cancelled", now)
            self._settle(conn, stale, "superseded", now)
            settled = set(stale)
            claimed = [c for c in active if (c.edition, c.subscriber_id) not in settled] if settled else active
            self._supersede_older(conn, [row for row in claimed if row.edition in older], now)
        return sorted(claimed, key=lambda c: (c.edition, c.subscriber_id))

    def _lease(self, conn: Connection, limit: int, now: datetime, only: list[str] | None,
               expired: bool) -> list[tuple[str, int]]:
        d = deliveries.c
        if expired:
            where = [d.status == "leased", d.lease_expires < now]
            order = d.lease_expires
        else:
            # The states written into the SQL, not bound: SQLite uses the due rows' partial index
            # (ix_deliveries_due) only for a WHERE that says its own, and otherwise sorts every
            # pending row of the edition for each claim (80 ms at 200,000).
            where = [d.status.in_([literal(state, literal_execute=True) for state in UNSENT]), d.not_before <= now]
            order = d.not_before
        if only is not None:
            where.append(d.edition.in_(only))
        else:  # a row of the ledger from before the queue has no frozen edition to be sent from
            where.append(d.edition.in_(select(editions.c.key)))
        chosen = select(d.edition, d.subscriber_id).where(*where).order_by(order).limit(limit) \
            .with_for_update(skip_locked=True)
        result = conn.execute(
            update(deliveries).where(tuple_(d.edition, d.subscriber_id).in_(chosen))
            .values(status="leased", lease_owner=self.worker, lease_expires=now + self.lease,
                    attempts=d.attempts + 1, updated_at=now)
            .returning(d.edition, d.subscriber_id))
        return [(edition, sid) for edition, sid in result.all()]

    def _stale(self, conn: Connection, pairs: list[tuple[str, int]], now: datetime) -> list[tuple[str, int]]:
        """Claimed rows whose reader has a newer edition of the same newsletter due already."""
        if not pairs:
            return []
        mine, newer = editions.alias("mine"), editions.alias("newer")
        other = deliveries.alias("other")
        rows = conn.execute(
            select(deliveries.c.edition, deliveries.c.subscriber_id)
            .join(mine, mine.c.key == deliveries.c.edition)
            .join(other, other.c.subscriber_id == deliveries.c.subscriber_id)
            .join(newer, newer.c.key == other.c.edition)
            .where(among(pairs),
                   newer.c.list_id == mine.c.list_id,
                   or_(newer.c.day > mine.c.day, and_(newer.c.day == mine.c.day, newer.c.revision > mine.c.revision)),
                   other.c.not_before <= now,
                   other.c.status.in_(("pending", "deferred", "leased", "sent")))
            .distinct()
        ).all()
        return [(edition, sid) for edition, sid in rows]

    def _supersede_older(self, conn: Connection, claimed: list[Claimed], now: datetime) -> None:
        """The rows still unsent of older editions of the readers about to get a newer one."""
        by_edition: dict[str, list[int]] = {}
        for row in claimed:
            by_edition.setdefault(row.edition, []).append(row.subscriber_id)
        for edition, sids in by_edition.items():
            this = select(editions.c.list_id, editions.c.day, editions.c.revision).where(editions.c.key == edition) \
                .subquery()
            older = select(editions.c.key).join(this, editions.c.list_id == this.c.list_id).where(
                or_(editions.c.day < this.c.day, and_(editions.c.day == this.c.day, editions.c.revision < this.c.revision)))
            conn.execute(update(deliveries).where(deliveries.c.subscriber_id.in_(sids), deliveries.c.status.in_(UNSENT),
                                                  deliveries.c.edition.in_(older))
                         .values(status="superseded", updated_at=now))

    def _settle(self, conn: Connection, pairs: list[tuple[str, int]], status: str, now: datetime) -> None:
        if pairs:
            conn.execute(update(deliveries).where(among(pairs))
                         .values(status=status, lease_owner=None, lease_expires=None, updated_at=now))

    def _expire_dead_owners(self, now: datetime) -> None:
        """Leases held by a process of this machine that no longer runs end now, not at their expiry:
        a run started after a kill sends what the killed one held at once."""
        with self.engine.connect() as conn:
            owners = conn.execute(select(deliveries.c.lease_owner).distinct()
                                  .where(deliveries.c.status == "leased", deliveries.c.lease_expires >= now)).scalars()
            dead = [owner for owner in owners if owner and _dead_here(owner)]
            if dead:
                conn.execute(update(deliveries).where(deliveries.c.status == "leased",
                                                      deliveries.c.lease_owner.in_(dead))
                             .values(lease_expires=now - timedelta(seconds=1)))
                conn.commit()

    def renew(self) -> None:
        """This worker lives: its leases run on. Not while an outcome transaction is open (the worker's
        heartbeat holds `outcomes.open`): the two lock the same rows."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            conn.execute(update(deliveries).where(deliveries.c.status == "leased", deliveries.c.lease_owner == self.worker)
                         .values(lease_expires=now + self.lease))

    def release(self, rows: Iterable[Claimed]) -> None:
        """Rows claimed but not sent (a run stopping): due again as they were, the attempt not counted."""
        pairs = [(r.edition, r.subscriber_id) for r in rows]
        if not pairs:
            return
        d = deliveries.c
        with self.engine.begin() as conn:
            conn.execute(update(deliveries)
                         .where(among(pairs), d.status == "leased",
                                d.lease_owner == self.worker)
                         .values(status="pending", attempts=d.attempts - 1, lease_owner=None, lease_expires=None))

    # -- outcomes ----------------------------------------------------------------------------------
    async def record(self, entries: list[Entry]) -> None:
        """Outcomes, in one committed transaction: one statement for them all (outcomes.Outcomes), without
        blocking the event loop where the driver can; a refused address is also bounced. Rows no longer
        leased to this worker are left alone."""
        await self.outcomes.write_async(*_outcome_rows(entries))

    # -- looks -------------------------------------------------------------------------------------
    def counts(self, edition: str, active_only: bool = False) -> dict[str, int]:
        query = select(deliveries.c.status, func.count()).where(deliveries.c.edition == edition)
        if active_only:  # a row left pending for someone who has unsubscribed since is owed to nobody
            query = query.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id) \
                .where(subscribers.c.status == "active")
        with self.engine.connect() as conn:
            found = {status: count for status, count in conn.execute(query.group_by(deliveries.c.status)).all()}
        return {status: found.get(status, 0) for status in STATES}

    def backlog(self, edition: str, who: ColumnElement[bool] | None = None) -> Backlog:
        """`who`: the readers the edition is for (a rhythm), of whom those with no row are new."""
        now = self.clock.now()
        counts = self.counts(edition, active_only=True)
        d = deliveries.c
        active = subscribers.c.status == "active"
        with self.engine.connect() as conn:
            audience = active if who is None else and_(active, who)
            new = conn.execute(select(func.count()).select_from(subscribers).where(audience, ~has_it(edition))).scalar_one()
            due = conn.execute(select(func.count()).select_from(deliveries)
                               .join(subscribers, subscribers.c.id == d.subscriber_id)
                               .where(d.edition == edition, active, d.status.in_(UNSENT), d.not_before <= now)).scalar_one()
            waiting = conn.execute(select(func.count()).select_from(deliveries)
                                   .join(subscribers, subscribers.c.id == d.subscriber_id)
                                   .where(d.edition == edition, active, d.status == "pending", d.attempts == 0,
                                          d.not_before > now)).scalar_one()
            later = conn.execute(select(func.min(d.not_before)).join(subscribers, subscribers.c.id == d.subscriber_id)
                                 .where(d.edition == edition, active, d.status.in_(UNSENT), d.not_before > now)
                                 ).scalar_one_or_none()
        owed = counts["pending"] + counts["deferred"]
        return Backlog(new=new, due=due, in_flight=counts["leased"], sent=counts["sent"], owed=owed, next_due=_utc(later),
                       waiting=waiting)

    def next_retry(self, only: Iterable[str], retries: int) -> datetime | None:
        """When the earliest row of these editions deferred for a retry within a run comes due."""
        d = deliveries.c
        with self.engine.connect() as conn:
            value = conn.execute(select(func.min(d.not_before)).where(
                d.edition.in_(list(only)), d.status == "deferred", d.attempts < retries)).scalar_one_or_none()
        return _utc(value)

    def next_due(self, only: Iterable[str] | None = None) -> datetime | None:
        """When the next row (of these editions, or of any) becomes due."""
        d = deliveries.c
        query = select(func.min(d.not_before)).where(d.status.in_(UNSENT))
        if only is not None:
            query = query.where(d.edition.in_(list(only)))
        with self.engine.connect() as conn:
            return _utc(conn.execute(query).scalar_one_or_none())


def _dead_here(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != HOST[:40] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _outcome_rows(entries: list[Entry]) -> tuple[list[Row], list[int]]:
    """The entries as the ledger's statements take them, and the readers to bounce."""
    rows = [(e.row.edition, e.row.subscriber_id, e.status, e.code, e.error[:500] if e.error else None, e.at, e.now,
             e.message_id, f"{e.row.locale}|{e.row.rubrics}") for e in entries]
    return rows, [e.row.subscriber_id for e in entries if e.status == "bounced"]
