"""The relay's limits, held for all workers together through the database, not per process:

    rate          messages per second: each worker reserves a short window of sending slots at a time
                  (relay_throttle.next_slot moves on by the window), and sends one per slot
    connections   at most that many open at once: one leased row of relay_slots per connection in
                  use, shared out evenly among the workers alive (delivery_workers, a heartbeat)

Mailtrain's limit was per process, so five processes sent five times the rate and got a sender
blacklisted; here the fifth worker gets a fifth of it.
"""
from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from digest.core.clock import Clock
from digest.delivery.schema import delivery_workers, relay_slots, relay_throttle
from subscribers.store import Store

WINDOW = 0.2  # seconds of the rate reserved at a time


class Relay:
    def __init__(self, store: Store, clock: Clock, worker: str, name: str, connections: int, rate: float,
                 lease_seconds: float = 30.0) -> None:
        self.engine = store.engine
        self.clock = clock
        self.worker = worker
        self.name = name[:64]
        self.connections = max(1, connections)
        self.rate = rate
        self.lease = timedelta(seconds=lease_seconds)
        self.held = 0
        self._window: list[float] = []  # the epoch seconds of the slots reserved and not used yet
        self._advance = update(relay_throttle).where(relay_throttle.c.name == bindparam("n")).values(
            next_slot=case((relay_throttle.c.next_slot > bindparam("now"), relay_throttle.c.next_slot),
                           else_=bindparam("now")) + bindparam("span")).returning(relay_throttle.c.next_slot)

    # -- the workers alive ------------------------------------------------------------------------
    def heartbeat(self) -> None:
        """This worker lives: its row seen now, its connection slots renewed."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            seen = conn.execute(update(delivery_workers).where(delivery_workers.c.id == self.worker)
                                .values(seen_at=now)).rowcount
            if not seen:
                conn.execute(insert(delivery_workers).values(id=self.worker, started_at=now, seen_at=now))
            conn.execute(update(relay_slots).where(relay_slots.c.name == self.name, relay_slots.c.owner == self.worker)
                         .values(expires=now + self.lease))

    def leave(self) -> None:
        """Give the connections back, and say goodbye; best effort: unsaid, both run out with the lease."""
        self.held = 0
        with contextlib.suppress(SQLAlchemyError), self.engine.begin() as conn:
            conn.execute(update(relay_slots).where(relay_slots.c.owner == self.worker).values(owner=None, expires=None))
            conn.execute(delete(delivery_workers).where(delivery_workers.c.id == self.worker))

    def _share(self, conn: Connection, now: datetime) -> int:
        """This worker's even share of the connections among the workers seen within a lease."""
        alive = sorted(conn.execute(select(delivery_workers.c.id)
                                    .where(delivery_workers.c.seen_at >= now - self.lease)).scalars())
        if self.worker not in alive:
            alive = sorted([*alive, self.worker])
        rank, count = alive.index(self.worker), len(alive)
        return self.connections // count + (1 if rank < self.connections % count else 0)

    # -- connections -----------------------------------------------------------------------------
    def still_held(self, wanted: int) -> bool:
        """Whether what this worker holds is still what hold(wanted) would hold: no worker joined or
        left since (a look, nothing taken or given back)."""
        with self.engine.connect() as conn:
            return min(wanted, self._share(conn, self.clock.now())) == self.held

    def hold(self, wanted: int) -> int:
        """Take or give back connection slots so as to hold min(wanted, this worker's share); the
        number held. A slot another worker holds is never taken, unless its lease ran out."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            self._make_slots(conn)
            target = min(wanted, self._share(conn, now))
            mine = list(conn.execute(select(relay_slots.c.slot).where(
                relay_slots.c.name == self.name, relay_slots.c.owner == self.worker).order_by(relay_slots.c.slot)).scalars())
            if len(mine) > target:
                conn.execute(update(relay_slots).where(relay_slots.c.name == self.name,
                                                       relay_slots.c.slot.in_(mine[target:])).values(owner=None, expires=None))
            elif len(mine) < target:
                free = select(relay_slots.c.slot).where(
                    relay_slots.c.name == self.name, relay_slots.c.slot < self.connections,
                    or_(relay_slots.c.owner.is_(None), relay_slots.c.expires < now)
                ).order_by(relay_slots.c.slot).limit(target - len(mine)).with_for_update(skip_locked=True)
                conn.execute(update(relay_slots).where(relay_slots.c.name == self.name, relay_slots.c.slot.in_(free))
                             .values(owner=self.worker, expires=now + self.lease))
            self.held = conn.execute(select(func.count()).select_from(relay_slots).where(
                relay_slots.c.name == self.name, relay_slots.c.owner == self.worker,
                relay_slots.c.slot < self.connections)).scalar_one()
        return self.held

    def _make_slots(self, conn: Connection) -> None:
        have = set(conn.execute(select(relay_slots.c.slot).where(relay_slots.c.name == self.name)).scalars())
        missing = [{"name": self.name, "slot": s} for s in range(self.connections) if s not in have]
        if missing:
            try:
                with conn.begin_nested():
                    conn.execute(insert(relay_slots), missing)
            except IntegrityError:
                pass  # another worker made them

    # -- rate --------------------------------------------------------------------------------------
    async def pace(self) -> None:
        """Wait for this worker's next sending slot (no wait without a rate)."""
        if self.rate <= 0:
            return
        if not self._window:
            # Several connections may find the window empty at once, and each reserves one: every slot
            # reserved is kept and used, none thrown away (that would send below the rate).
            reserved = await asyncio.to_thread(self._reserve)
            self._window = sorted(self._window + reserved)
        due = self._window.pop(0)
        await asyncio.sleep(max(0.0, due - self._epoch()))

    def _reserve(self) -> list[float]:
        count = max(1, math.ceil(self.rate * WINDOW))
        span = count / self.rate
        with self.engine.begin() as conn:
            end = conn.execute(self._advance, {"n": self.name, "now": self._epoch(), "span": span}).scalar_one_or_none()
            if end is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(relay_throttle).values(name=self.name, next_slot=self._epoch()))
                except IntegrityError:
                    pass
                end = conn.execute(self._advance, {"n": self.name, "now": self._epoch(), "span": span}).scalar_one()
        start = end - span
        return [start + i / self.rate for i in range(count)]

    def _epoch(self) -> float:
        return self.clock.now().timestamp()


