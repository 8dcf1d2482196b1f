"""A worker: claims due rows of every enqueued edition (or of one, for `digest send`), delivers them
through the transport within the relay's shared limits, and records each outcome; until nothing is due
(`until_idle`, as `digest send` runs from cron) or until SIGTERM (`digest worker`, under systemd),
finishing what is in flight either way. Idle, it sleeps until the next row is due.
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from digest.core.clock import Clock
from digest.core.config import Settings
from digest.core.errors import LedgerError
from digest.delivery.compose import Composed, Composer
from digest.delivery.editions import Editions
from digest.delivery.loop import Report, RetryPolicy, SendLoop
from digest.delivery.queue import Claimed, Queue
from digest.delivery.relay import Relay
from digest.delivery.transports import Transport, open_transport
from subscribers.store import Store
from subscribers.tokens import Tokens

try:  # libuv's event loop (uvloop): the same asyncio, a fifth less CPU a message on the sending path
    from uvloop import new_event_loop as NEW_LOOP  # noqa: N812
except ImportError:  # pragma: no cover — a platform without it (Windows): asyncio's own loop
    NEW_LOOP = None  # type: ignore[assignment]

# Rows claimed at a time: a few per connection held, small enough that one worker never holds much of
# what the others could be sending (two batches at most: the next is claimed while one goes), large
# enough that a claim's queries cost little per message.
BATCH_PER_CONNECTION, BATCH_AT_LEAST = 16, 16
SHARE_WAIT = timedelta(seconds=1)


class Worker:
    def __init__(self, settings: Settings, store: Store, tokens: Tokens, clock: Clock | None = None, *,
                 only: list[str] | None = None, outbox: Path | None = None, until_idle: bool = False,
                 report: Report | None = None, progress: Callable[[int], None] = lambda n: None,
                 transport: Transport | None = None) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        self.tokens = tokens
        self.only = only
        self.until_idle = until_idle
        self.progress = progress
        delivery = settings.delivery
        self.queue = Queue(store, self.clock, lease_seconds=delivery.lease_seconds)
        self.editions = Editions(store)
        # A missing password stops us here, before any claim.
        self.transport = transport or open_transport(settings, "", outbox)
        self.relay = Relay(store, self.clock, self.queue.worker, self.transport.where, self.transport.concurrency,
                           self.transport.rate, delivery.lease_seconds)
        self.policy = RetryPolicy.of(delivery)
        self.report = report or Report("(every edition)", self.transport.where)
        self.composers: dict[str, Composer] = {}
        self._stop: asyncio.Event | None = None  # made in the running loop
        self._loop: SendLoop | None = None
        self.interrupted = False

    def composer(self, key: str) -> Composer:
        if key not in self.composers:
            frozen = self.editions.get(key)
            if frozen is None:
                raise LookupError(key)
            self.composers[key] = Composer(self.settings, frozen, self.tokens, self.editions,
                                           self.editions.variants(frozen))
        return self.composers[key]

    def compose(self, row: Claimed) -> Composed:
        return self.composer(row.edition).compose(row.subscriber_id, row.email, row.name, row.locale, row.rubrics,
                                                  self.transport.wire)

    @property
    def compiles(self) -> int:
        return sum(c.compiles for c in self.composers.values())

    @property
    def skipped(self) -> list[str]:
        return [item for c in self.composers.values() for item in c.skipped]

    def interrupt(self) -> None:
        """SIGINT/SIGTERM: take nothing new; what is in flight finishes and is recorded."""
        self.interrupted = True
        if self._loop is not None:
            self._loop.stop()
        if self._stop is not None:
            self._stop.set()

    def run(self) -> Report:
        with asyncio.Runner(loop_factory=NEW_LOOP) as runner:
            return runner.run(self.serve())

    async def serve(self) -> Report:
        self._stop = asyncio.Event()
        if self.interrupted:
            self._stop.set()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.interrupt)
        started = time.perf_counter()
        self.relay.heartbeat()
        beat = asyncio.create_task(self._heartbeat())
        try:
            while not self._stop.is_set() and await self._cycle():
                pass
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            self.relay.leave()
            await self.transport.close()
            await self.queue.aclose()
            self.report.elapsed += time.perf_counter() - started
            self.report.interrupted = self.interrupted
            self.report.settle()
        return self.report

    async def _heartbeat(self) -> None:
        """Leases renewed a few times a lease. A database busy for a moment is tried again at the next
        beat; the lease outlasts two of them."""
        while True:
            await asyncio.sleep(self.queue.lease.total_seconds() / 3)
            async with self.queue.outcomes.open:  # not while an outcome transaction is open (same rows)
                with contextlib.suppress(SQLAlchemyError):
                    self.queue.renew()
                    self.relay.heartbeat()

    async def _cycle(self) -> bool:
        """A run of batches, each claimed while the one before goes; False when the run is over."""
        # This worker's share of the relay's connections, taken here and looked at again before each
        # next batch is claimed (never changed while connections are in use): a worker that joins or
        # leaves ends the others' run of batches, and they take their new share here.
        held = self.relay.hold(self.transport.concurrency)
        if held == 0:  # every connection is someone else's: look again in a moment
            return await self._sleep_until(self.clock.now() + SHARE_WAIT)
        batch = max(BATCH_AT_LEAST, held * BATCH_PER_CONNECTION)
        rows = await asyncio.to_thread(self.queue.claim, batch, self.only)
        if not rows:
            if self.until_idle:
                retry = self.queue.next_retry(self.only or [], self.policy.retries) if self.only else None
                return retry is not None and await self._sleep_until(retry)
            self.relay.hold(0)  # idle: the connections are the others'
            await self.transport.close()
            return await self._sleep_until(self.queue.next_due(self.only))

        async def more() -> list[Claimed] | None:
            """The next batch, claimed while this one goes; none when the relay's share changed (a
            worker joined or left): the batch ends, and the next cycle holds the new share."""
            if not await asyncio.to_thread(self.relay.still_held, self.transport.concurrency):
                return None
            return await asyncio.to_thread(self.queue.claim, batch, self.only)

        self._loop = SendLoop(self.transport, self.queue, self.policy, self.report, self.compose,
                              self.relay.pace, self.progress)
        if self.interrupted:
            self._loop.stop()
        untouched = await self._loop.run(rows, held, more)
        if self._loop.fatal is None:
            self.queue.release(untouched)
        else:  # the database refuses writes: what this process held is freed when it exits (dead owner)
            with contextlib.suppress(SQLAlchemyError):
                self.queue.release(untouched)
            raise LedgerError(
                f"the ledger in {self.settings.database} could not be written: {self._loop.fatal.__class__.__name__}: "
                f"{str(self._loop.fatal).splitlines()[0]}",
                "nothing more was sent; fix the database and run `digest send` again to finish",
            )
        return not self._loop.stopping

    async def _sleep_until(self, moment: datetime | None) -> bool:
        """Sleep until `moment` (at most poll_seconds: an edition may be enqueued meanwhile); False if
        the worker was told to stop meanwhile."""
        assert self._stop is not None
        wait = self.settings.delivery.poll_seconds
        if moment is not None:
            wait = min(wait, max(0.0, (moment - self.clock.now()).total_seconds()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=wait)
        return not self._stop.is_set()
