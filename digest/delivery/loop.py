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
from digest.delivery.queue import Claimed, Queue
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
            self.record(row, outcome, message_id)
        except SQLAlchemyError as exc:
            # The queue cannot be written (a locked or full database): sending on without recording
            # could double a reader, so the whole run stops here.
            self.fatal = self.fatal or exc
            self.stop()

    def record(self, row: Claimed, outcome: Outcome, message_id: str) -> None:
        queue, report, now = self.queue, self.report, self.queue.clock.now()
        key = (row.edition, row.subscriber_id)
        if outcome.fatal:
            # Nothing can go this way: keep this message due at once and stop taking new ones.
            queue.deferred(row, outcome.code, outcome.message, now, message_id)
            if outcome.message not in report.errors:
                report.errors.append(outcome.message)
            report.last[key] = Kind.DEFERRED
            self.stop()
            return
        if outcome.kind is Kind.SENT:
            queue.sent(row, outcome.code, message_id)
        elif outcome.kind is Kind.FAILED:
            queue.failed(row, outcome.code, outcome.message, outcome.bounce, message_id)
            report.bounced += outcome.bounce
        else:
            queue.deferred(row, outcome.code, outcome.message, now + self.policy.delay(row.attempts), message_id)
            report.retried += self.policy.soon(row.attempts) and not self.stopping
        if report.last.get(key) is not Kind.DEFERRED:
            self.progress(1)  # a retry is the same message, counted once
        report.last[key] = outcome.kind
