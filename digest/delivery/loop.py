"""The send loop: a pool of workers as wide as the transport, the retry policy, the rate limit, and
every outcome recorded in the ledger as it happens. It knows a transport only by its protocol.

    jobs ──▶ queue ──▶ N workers ──▶ transport.send ──▶ record: ledger + report
                ▲                                          │ 4xx: deferred, retried after a backoff
                └──────────────── retry timer ◀────────────┘
"""
from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from digest.core.config import Delivery
from digest.delivery.ledger import Due, Ledger, utcnow
from digest.delivery.transports.base import Envelope, Kind, Outcome, Transport


@dataclass
class Report:
    edition: str
    destination: str
    variants: int = 0
    due: int = 0
    added: int = 0  # ledger rows made in this run: subscribers new since the last run of this edition
    recovered: int = 0  # left in flight by a killed run, sent again
    already_sent: int = 0
    outcomes: Counter[Kind] = field(default_factory=Counter)
    bounced: int = 0
    retried: int = 0
    left: int = 0  # after the run: messages still owed (deferred, pending), for the next run
    next_due: datetime | None = None
    interrupted: bool = False
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)

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
    """A 4xx or a dropped connection is tried again `retries` times in a run, after base × 2^(n−1)
    seconds with ±50 % jitter; then it waits `later_minutes` for the next run."""

    retries: int
    base_seconds: float
    later_minutes: float

    @classmethod
    def of(cls, delivery: Delivery) -> RetryPolicy:
        return cls(delivery.retries, delivery.retry_base_seconds, delivery.retry_later_minutes)

    def delay(self, attempt: int) -> float:
        return self.base_seconds * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)


@dataclass
class Job:
    due: Due
    envelope: Envelope
    data: bytes
    message_id: str
    attempt: int = 1  # in this run


class RateLimiter:
    """At most `rate` messages per second over all workers (0: no limit)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            now = time.monotonic()
            if self.next > now:
                await asyncio.sleep(self.next - now)
            self.next = max(now, self.next) + self.interval


class SendLoop:
    def __init__(self, transport: Transport, ledger: Ledger, policy: RetryPolicy, report: Report,
                 progress: Callable[[int], None] = lambda n: None) -> None:
        self.transport = transport
        self.ledger = ledger
        self.policy = policy
        self.report = report
        self.progress = progress
        self.stopping = False
        self.fatal: SQLAlchemyError | None = None  # the ledger could not be written
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=transport.concurrency * 8)
        self._limiter = RateLimiter(transport.rate)
        self._retries_pending = 0
        self._retry_done = asyncio.Event()
        # Deferred in the ledger with a retry to come in this run; any still here at the end (the run
        # stopped first) is counted as deferred, so that the summary says what the ledger says.
        self._awaiting_retry: set[int] = set()
        self._timers: set[asyncio.Task[None]] = set()  # held, so that no pending timer is collected

    def stop(self) -> None:
        """Take nothing new; what is in flight finishes and is recorded."""
        self.stopping = True

    async def run(self, jobs: Iterator[Job]) -> None:
        workers = [asyncio.create_task(self._worker()) for _ in range(self.transport.concurrency)]
        try:
            for job in jobs:
                if self.stopping:
                    break
                await self._queue.put(job)
            # Done when every job has been handled and no retry is waiting to be queued again (a
            # retry is queued before it stops counting as pending, so join() then covers it).
            while True:
                await self._queue.join()
                if not self._retries_pending or self.stopping:
                    break
                self._retry_done.clear()
                await self._retry_done.wait()
        finally:
            for _ in workers:
                await self._queue.put(None)
            await asyncio.gather(*workers)
        if self._awaiting_retry:
            self.report.outcomes[Kind.DEFERRED] += len(self._awaiting_retry)
            self.progress(len(self._awaiting_retry))

    async def _worker(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                if job is None:
                    return
                if self.stopping:
                    continue  # left pending (or deferred) in the ledger for the next run
                await self._limiter.wait()
                try:
                    self.ledger.sending(job.due.subscriber_id, job.message_id)
                    self.record(job, await self.transport.send(job.envelope, job.data))
                except SQLAlchemyError as exc:
                    # The ledger cannot be written (a locked or full database): sending on without
                    # recording could double a reader, so the whole run stops here.
                    self.fatal = self.fatal or exc
                    self.stop()
            finally:
                self._queue.task_done()

    def record(self, job: Job, outcome: Outcome) -> None:
        sid, ledger, report = job.due.subscriber_id, self.ledger, self.report
        self._awaiting_retry.discard(sid)
        if outcome.fatal:
            # Nothing can go this way: keep this message due at once and stop taking new ones.
            ledger.deferred(sid, outcome.code, outcome.message, utcnow())
            if outcome.message not in report.errors:
                report.errors.append(outcome.message)
            self.stop()
            report.outcomes[Kind.DEFERRED] += 1
            return
        if outcome.kind is Kind.SENT:
            ledger.sent(sid, outcome.code)
        elif outcome.kind is Kind.FAILED:
            ledger.failed(sid, outcome.code, outcome.message, bounce=outcome.bounce)
            report.bounced += outcome.bounce
        elif job.attempt < self.policy.retries and not self.stopping:
            self._retry(job, outcome)
            return
        else:
            ledger.deferred(sid, outcome.code, outcome.message, ledger.later(self.policy.later_minutes))
        report.outcomes[outcome.kind] += 1
        self.progress(1)

    def _retry(self, job: Job, outcome: Outcome) -> None:
        delay = self.policy.delay(job.attempt)
        sid = job.due.subscriber_id
        self.ledger.deferred(sid, outcome.code, outcome.message, utcnow() + timedelta(seconds=delay))
        self._retries_pending += 1
        self.report.retried += 1
        self._awaiting_retry.add(sid)
        timer = asyncio.create_task(self._retry_later(job, delay))
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    async def _retry_later(self, job: Job, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
            if not self.stopping:
                job.attempt += 1
                await self._queue.put(job)
        finally:
            self._retries_pending -= 1
            self._retry_done.set()
