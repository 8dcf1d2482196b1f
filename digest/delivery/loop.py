"""The send loop: a batch of claimed rows, as many workers as the connections this process holds, the
relay's shared rate, and every outcome recorded in the queue as it happens. It knows a transport only
by its protocol.

    claimed rows ──▶ queue ──▶ N tasks ──▶ pace ──▶ compose ──▶ transport.send ──▶ record
                                                                  4xx: deferred, due again after a backoff

A retry is not a timer in this process: a deferred row is due again at its `not_before`, and whichever
worker is up claims it then.
"""
from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple, cast

from sqlalchemy.exc import SQLAlchemyError

from digest.core.config import Delivery
from digest.delivery.queue import Claimed, Entry, Queue
from digest.delivery.transports.base import Announces, Envelope, HoldsEnd, Kind, Outcome, Transport


@dataclass
class Report:
    edition: str
    destination: str
    variants: int = 0
    due: int = 0
    added: int = 0  # rows made in this run: subscribers new since the edition was enqueued
    recovered: int = 0  # left in flight by a run that died, sent again
    already_sent: int = 0
    outcomes: Counter[Kind] = field(default_factory=Counter)  # each row's last outcome in this run
    bounced: int = 0
    retried: int = 0
    left: int = 0  # after the run: messages owed that are not merely waiting for their hour (deferred, or due)
    waiting: int = 0  # after the run: messages waiting for their reader's hour ([delivery] local_time)
    in_flight: int = 0  # after the run: held by another worker (sent by it, or again when its lease runs out)
    next_due: datetime | None = None
    interrupted: bool = False
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)
    last: dict[tuple[str, int], Kind] = field(default_factory=dict, repr=False)

    def settle(self) -> None:
        """The outcomes are each row's last one: a row deferred then sent counts once, as sent."""
        self.outcomes = Counter(self.last.values())

    @property
    def rate(self) -> float:
        done = self.outcomes[Kind.SENT] + self.outcomes[Kind.FAILED]
        return done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def ok(self) -> bool:
        return (not self.interrupted and not self.errors and not self.left
                and self.outcomes[Kind.DEFERRED] == 0 and self.outcomes[Kind.FAILED] == 0)


@dataclass(frozen=True)
class RetryPolicy:
    """A 4xx or a dropped connection is tried again after base × 2^(n−1) seconds (±50 % jitter) for
    the first `retries` attempts, then every `later_minutes`."""

    retries: int
    base_seconds: float
    later_minutes: float

    @classmethod
    def of(cls, delivery: Delivery) -> RetryPolicy:
        return cls(delivery.retries, delivery.retry_base_seconds, delivery.retry_later_minutes)

    def soon(self, attempts: int) -> bool:
        return attempts < self.retries

    def delay(self, attempts: int) -> timedelta:
        if self.soon(attempts):
            return timedelta(seconds=self.base_seconds * 2 ** (attempts - 1) * random.uniform(0.5, 1.5))
        return timedelta(minutes=self.later_minutes)


class Ready(NamedTuple):
    """A row with its message, as it goes on the wire."""

    row: Claimed
    data: bytes
    message_id: str
    envelope: Envelope


Compose = Callable[[Claimed], tuple[bytes, str, str]]  # the reader's message, its Message-ID, its return path
More = Callable[[], Awaitable[list[Claimed] | None]]  # the next rows to send; None or none: no more


class SendLoop:
    def __init__(self, transport: Transport, queue: Queue, policy: RetryPolicy, report: Report, compose: Compose,
                 pace: Callable[[], Awaitable[None]],
                 progress: Callable[[int], None] = lambda n: None) -> None:
        self.transport = transport
        self.queue = queue
        self.policy = policy
        self.report = report
        self.compose = compose
        self.pace = pace
        self.progress = progress
        self.stopping = False
        self.fatal: SQLAlchemyError | None = None  # the queue could not be written
        self.trouble: Exception | None = None  # the next rows could not be had
        self.unsent: list[Claimed] = []  # not sent: the outcome before them could not be committed
        # The transport waits for the previous outcome's commit before a message's last step (SMTP's
        # final dot); else the loop waits for it before the message.
        self.holds_end = bool(getattr(transport, "holds_end", False))
        # It also takes the message a connection sends next, to write its envelope with this one's end.
        self.announces = self.holds_end and bool(getattr(transport, "announces", False))
        self.ledger = Ledger(queue)

    def stop(self) -> None:
        """Take nothing new; what is in flight finishes and is recorded."""
        self.stopping = True

    async def run(self, rows: list[Claimed], concurrency: int, more: More | None = None) -> list[Claimed]:
        """Send the rows, and those `more` gives while they last; the ones not started (the loop
        stopped) are given back."""
        source = _Rows(self, rows, max(concurrency, len(rows) // 2), more)
        untouched: list[Claimed] = []

        async def work() -> None:
            committed: asyncio.Future[None] | None = None  # this task's last outcome
            row = await source.take()
            ready = await self._prepare(row) if row is not None else None
            while ready is not None:
                following = None
                if self.announces and not self.stopping and (after := source.take_now()) is not None:
                    following = await self._prepare(after)
                    if following is None:  # the database failed: the run stops, and this one does not go
                        cast(Announces, self.transport).withdraw(ready.envelope)
                        self.unsent.append(ready.row)
                        break
                committed = await self._one(ready, committed, following)
                if following is not None and (committed is None or self.stopping):
                    # Not sent after all: given back, its envelope (if announced) dropped unanswered.
                    cast(Announces, self.transport).withdraw(following.envelope)
                    untouched.append(following.row)
                    following = None
                if following is None:
                    row = await source.take()  # (stopped: None, once the rows asked for are here)
                    ready = await self._prepare(row) if row is not None else None
                else:
                    ready = following
            await self.settled(committed)

        await asyncio.gather(*(work() for _ in range(max(1, min(concurrency, len(rows))))))
        if source.refill is not None:
            await source.refill  # rows claimed meanwhile are given back with the rest
        if self.trouble is not None:
            raise self.trouble
        return untouched + self.unsent + list(source.waiting)

    async def _prepare(self, row: Claimed) -> Ready | None:
        """The row's message, composed once its sending slot comes (the relay's rate, kept in the
        database); None if the database failed meanwhile: the run stops, and the row is given back."""
        try:
            await self.pace()
        except SQLAlchemyError as exc:
            self.fatal = self.fatal or exc
            self.stop()
            self.unsent.append(row)
            return None
        data, message_id, return_path = self.compose(row)
        return Ready(row, data, message_id, Envelope(return_path, row.email, f"{row.edition}/{row.subscriber_id:010d}"))

    async def _one(self, ready: Ready, previous: asyncio.Future[None] | None,
                   following: Ready | None = None) -> asyncio.Future[None] | None:
        """Send one message; the future of its outcome's commit (None: not sent, the run stops).

        `previous` is this task's last outcome, maybe still being committed. A message is delivered
        when the server takes its final dot, and that is not written before the previous outcome is
        committed: what a crash can leave sent and unrecorded is one message per connection at most,
        as when each outcome was committed before the next message began, yet the commit runs while
        the next message is composed and its envelope and body are on the wire.

        `following`: the message this task sends next, whose envelope a transport that announces
        writes with this one's final dot (it is sent by the next call, on the same connection)."""
        row = ready.row
        try:
            if previous is not None and not self.holds_end:
                await asyncio.shield(previous)
            if self.announces:
                then = (following.envelope, following.data) if following is not None else None
                outcome = await cast(Announces, self.transport).send(ready.envelope, ready.data, before_end=previous,
                                                                      then=then)
            elif self.holds_end:
                outcome = await cast(HoldsEnd, self.transport).send(ready.envelope, ready.data, before_end=previous)
            else:
                outcome = await self.transport.send(ready.envelope, ready.data)
        except SQLAlchemyError as exc:
            # The last outcome could not be committed (a locked or full database), and this message's
            # end was not sent: sending on without recording could double a reader. The run stops.
            self.fatal = self.fatal or exc
            self.stop()
            self.unsent.append(row)
            return None
        return self.record(row, outcome, ready.message_id)

    async def settled(self, committed: asyncio.Future[None] | None) -> None:
        """Wait for a task's last outcome to be committed; a failure stops the run."""
        if committed is None:
            return
        try:
            await asyncio.shield(committed)
        except SQLAlchemyError as exc:
            self.fatal = self.fatal or exc
            self.stop()

    def record(self, row: Claimed, outcome: Outcome, message_id: str) -> asyncio.Future[None]:
        """The outcome handed to the ledger (committed with the others that come meanwhile), counted
        once committed; the future of its commit."""
        report, now = self.report, self.queue.clock.now()
        key = (row.edition, row.subscriber_id)
        if outcome.fatal:
            # Nothing can go this way: keep this message due at once and stop taking new ones.
            self.stop()
            if outcome.message not in report.errors:
                report.errors.append(outcome.message)
            report.last[key] = Kind.DEFERRED
            return self.ledger.submit(Entry(row, "deferred", outcome.code, outcome.message, now, message_id, now))
        if outcome.kind is Kind.SENT:
            entry = Entry(row, "sent", outcome.code, None, now, message_id, now)
        elif outcome.kind is Kind.FAILED:
            entry = Entry(row, "bounced" if outcome.bounce else "failed", outcome.code, outcome.message, now,
                          message_id, now)
        else:
            entry = Entry(row, "deferred", outcome.code, outcome.message, now + self.policy.delay(row.attempts),
                          message_id, now)

        def count(committed: asyncio.Future[None]) -> None:
            if committed.cancelled() or committed.exception() is not None:
                return
            if outcome.kind is Kind.FAILED:
                report.bounced += outcome.bounce
            elif outcome.kind is Kind.DEFERRED:
                report.retried += self.policy.soon(row.attempts) and not self.stopping
            if report.last.get(key) is not Kind.DEFERRED:
                self.progress(1)  # a retry is the same message, counted once
            report.last[key] = outcome.kind

        committed = self.ledger.submit(entry)
        committed.add_done_callback(count)
        return committed


class _Rows:
    """The rows a run sends: those it was given, then those `more` gives while they last.

    `more` is asked for the next rows while `low` of these are still to go (a claim takes a few
    milliseconds, in a thread): the connections never wait for it. None or no rows from it ends the
    run once what it holds is sent. Once the loop stops, no row is taken: the rest are given back."""

    def __init__(self, loop: SendLoop, rows: list[Claimed], low: int, more: More | None) -> None:
        self.loop = loop
        self.waiting: deque[Claimed] = deque(rows)
        self.low = low
        self.more = more
        self.refill: asyncio.Task[None] | None = None
        self.exhausted = more is None

    def take_now(self) -> Claimed | None:
        """The next row if one is here; None if not (yet)."""
        if not self.exhausted and self.refill is None and len(self.waiting) <= self.low:
            self.refill = asyncio.create_task(self._fetch())
        return self.waiting.popleft() if self.waiting and not self.loop.stopping else None

    async def take(self) -> Claimed | None:
        """The next row, once the next rows asked for are here if need be; None: no more."""
        while (row := self.take_now()) is None and self.refill is not None:
            await asyncio.shield(self.refill)  # stopping: its rows are given back with the rest
        return row

    async def _fetch(self) -> None:
        assert self.more is not None
        try:
            got = await self.more() if not self.loop.stopping else None
        except Exception as exc:  # noqa: BLE001 — raised by run() once what is in flight is recorded
            self.loop.trouble, got = exc, None
        finally:
            self.refill = None
        if got:
            self.waiting.extend(got)
        else:
            self.exhausted = True


class Ledger:
    """Group commit of outcomes: the first outcome is written at once; those that come while the
    event loop goes round once more go together in the next transaction, one statement. A commit's
    cost is shared by as many messages as finished meanwhile.

    The writes run on the event loop itself, not in a thread: a thread needs the interpreter's lock
    for every step of the driver, and while the loop is busy it gets it only every switch interval
    (5 ms); a group took 3 ms there against 0.5 ms on the loop. On PostgreSQL the driver's
    asynchronous connection lets the loop send on while the server commits; on SQLite, a local
    file, the loop waits for the write. Either way no connection waits for a commit but for the next
    message's final dot (see SendLoop._one)."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.waiting: list[tuple[Entry, asyncio.Future[None]]] = []
        self.writing: asyncio.Task[None] | None = None

    def submit(self, entry: Entry) -> asyncio.Future[None]:
        """The future of `entry`'s commit: done once it is committed, or with what the database raised."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((entry, done))
        if self.writing is None:
            self.writing = asyncio.create_task(self._drain())
        return done

    async def _drain(self) -> None:
        try:
            while self.waiting:
                group, self.waiting = self.waiting, []
                try:
                    await self.queue.record([entry for entry, _ in group])
                except Exception as exc:  # noqa: BLE001 — each writer gets it: none is left waiting
                    for _, done in group:
                        done.set_exception(exc)
                else:
                    for _, done in group:
                        done.set_result(None)
                await asyncio.sleep(0)  # the outcomes of this round of the loop join the next group
        finally:
            self.writing = None
