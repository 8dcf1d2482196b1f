"""Enqueueing an edition's rows: one per active reader, never two, and the count the command prints
(`digest send --enqueue-only`: "N readers added"), on SQLite and on PostgreSQL."""
from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import select

from digest.delivery.queue import Queue
from digest.delivery.schema import deliveries
from subscribers.store import Store

EDITION = "quotidien.lequotidien.example.ma-2026-11-29"
ZONES = ["Africa/Casablanca", "Asia/Tokyo", "America/New_York"]


def _readers(store: Store, first: int, count: int) -> None:
    with store.bulk() as tx:
        for i in range(first, first + count):
            tx.add(f"reader{i:04d}@example.com", timezone=ZONES[i % 3], status="unsubscribed" if i % 5 == 4 else "active")


def test_an_enqueue_adds_a_row_per_active_reader_once_and_counts_them(database):
    store = Store.open(database)
    try:
        _readers(store, 0, 30)  # 24 active, in three zones: one INSERT each
        queue = Queue(store)
        now = datetime(2026, 11, 29, 5, tzinfo=UTC)
        assert queue.add_rows(EDITION, now, "07:00") == 24
        assert queue.add_rows(EDITION, now, "07:00") == 0  # again from cron: nothing new
        _readers(store, 30, 10)  # 8 more active readers subscribe after the enqueue
        assert queue.add_rows(EDITION, now, "07:00") == 8
        with store.engine.connect() as conn:
            rows = Counter(conn.execute(select(deliveries.c.subscriber_id).where(deliveries.c.edition == EDITION)).scalars())
        assert len(rows) == 32 and set(rows.values()) == {1}
    finally:
        store.close()
