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
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from digest.core.config import Delivery
from digest.delivery.queue import Claimed, Entry, Queue
from digest.delivery.transports.base import Envelope, Kind, Outcome, Transport


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


Compose = Callable[[Claimed], tuple[bytes, str, str]]  # the reader's message, its Message-ID, its return path


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
        self.ledger = Ledger(queue)

    def stop(self) -> None:
        """Take nothing new; what is in flight finishes and is recorded."""
        self.stopping = True

    async def run(self, rows: list[Claimed], concurrency: int) -> list[Claimed]:
        """Send the rows; the ones not started (the loop stopped) are given back."""
        waiting: asyncio.Queue[Claimed] = asyncio.Queue()
        for row in rows:
            waiting.put_nowait(row)
        untouched: list[Claimed] = []

        async def work() -> None:
            while not waiting.empty():
                row = waiting.get_nowait()
                if self.stopping:
                    untouched.append(row)
                    continue
                await self._one(row)

        await asyncio.gather(*(work() for _ in range(max(1, min(concurrency, len(rows))))))
        return untouched

    async def _one(self, row: Claimed) -> None:
        await self.pace()
        data, message_id, return_path = self.compose(row)
        envelope = Envelope(return_path, row.email, f"{row.edition}/{row.subscriber_id:010d}")
        outcome = await self.transport.send(envelope, data)
        try:
            await self.record(row, outcome, message_id)
        except SQLAlchemyError as exc:
            # The queue cannot be written (a locked or full database): sending on without recording
            # could double a reader, so the whole run stops here.
            self.fatal = self.fatal or exc
            self.stop()

    async def record(self, row: Claimed, outcome: Outcome, message_id: str) -> None:
        """The outcome committed (with the others that came meanwhile), then counted. Each task waits for
        its own before it takes another row: what a crash can leave sent and unrecorded is one message
        per connection at most, as when every outcome was its own transaction."""
        report, now = self.report, self.queue.clock.now()
        key = (row.edition, row.subscriber_id)
        if outcome.fatal:
            # Nothing can go this way: keep this message due at once and stop taking new ones.
            self.stop()
            await self.ledger.write(Entry(row, "deferred", outcome.code, outcome.message, now, message_id, now))
            if outcome.message not in report.errors:
                report.errors.append(outcome.message)
            report.last[key] = Kind.DEFERRED
            return
        if outcome.kind is Kind.SENT:
            entry = Entry(row, "sent", outcome.code, None, now, message_id, now)
        elif outcome.kind is Kind.FAILED:
            entry = Entry(row, "bounced" if outcome.bounce else "failed", outcome.code, outcome.message, now,
                          message_id, now)
        else:
            entry = Entry(row, "deferred", outcome.code, outcome.message, now + self.policy.delay(row.attempts),
                          message_id, now)
        await self.ledger.write(entry)
        if outcome.kind is Kind.FAILED:
            report.bounced += outcome.bounce
        elif outcome.kind is Kind.DEFERRED:
            report.retried += self.policy.soon(row.attempts) and not self.stopping
        if report.last.get(key) is not Kind.DEFERRED:
            self.progress(1)  # a retry is the same message, counted once
        report.last[key] = outcome.kind


class Ledger:
    """Group commit of outcomes: the first outcome is written at once, in a thread (the event loop sends
    on meanwhile); the outcomes that come while it commits go together in the next transaction, one
    executemany. A commit's cost is shared by as many messages as were sent while it ran."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.waiting: list[tuple[Entry, asyncio.Future[None]]] = []
        self.writing: asyncio.Task[None] | None = None

    async def write(self, entry: Entry) -> None:
        """Return once `entry` is committed; raise what the database raised if it could not be."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((entry, done))
        if self.writing is None:
            self.writing = asyncio.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        try:
            while self.waiting:
                group, self.waiting = self.waiting, []
                try:
                    await asyncio.to_thread(self.queue.record, [entry for entry, _ in group])
                except Exception as exc:  # noqa: BLE001 — each writer gets it: none is left waiting
                    for _, done in group:
                        done.set_exception(exc)
                else:
                    for _, done in group:
                        done.set_result(None)
        finally:
            self.writing = None
