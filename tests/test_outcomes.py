"""A worker's outcomes written in groups (digest/delivery/outcomes.py), on SQLite and on PostgreSQL: a
group of one, and one of more rows than a statement takes (two statements, one transaction); only the
rows leased to this worker change."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from digest.delivery.outcomes import Outcomes, OutcomeWriter
from digest.delivery.schema import deliveries
from subscribers.merging import insert_many
from subscribers.schema import subscribers
from subscribers.store import Store

EDITION = "quotidien-2026-11-30"


def _leased(store: Store, readers: int, owner: str, now: datetime) -> list[int]:
    with store.engine.begin() as conn:
        insert_many(conn, subscribers, [{"email": f"reader{i}@example.ma", "name": "", "locale": "fr", "timezone": "UTC",
                                         "rubrics": "", "status": "active", "created_at": now, "updated_at": now}
                                        for i in range(readers)])
        ids = list(conn.execute(select(subscribers.c.id).order_by(subscribers.c.id)).scalars())
        insert_many(conn, deliveries, [{"edition": EDITION, "subscriber_id": sid, "status": "leased", "attempts": 1,
                                        "not_before": now, "updated_at": now, "lease_owner": owner,
                                        "lease_expires": now + timedelta(seconds=30)} for sid in ids])
    return ids


def test_groups_of_one_and_of_more_than_a_statement_takes_are_committed(database):
    store = Store.open(database)
    now = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    ids = _leased(store, OutcomeWriter.GROUP + 3, "worker-a", now)
    mine, theirs = ids[:-1], ids[-1]
    with store.engine.begin() as conn:  # the last row is another worker's now
        conn.execute(deliveries.update().where(deliveries.c.subscriber_id == theirs).values(lease_owner="worker-b"))

    def outcome(sid: int) -> tuple:
        return (EDITION, sid, "sent", 250, None, now, now + timedelta(seconds=1), f"<{sid}@example.ma>", "fr|")

    async def write() -> None:
        outcomes = Outcomes(store, "worker-a")
        try:
            await outcomes.write_async([outcome(mine[0])], [])  # a group of one
            await outcomes.write_async([outcome(sid) for sid in [*mine[1:], theirs]], [])  # two statements
        finally:
            await outcomes.aclose()

    try:
        asyncio.run(write())
        with store.engine.connect() as conn:
            got = {row.subscriber_id: row for row in conn.execute(select(deliveries))}
        assert all(got[sid].status == "sent" and got[sid].lease_owner is None and got[sid].last_code == 250
                   and got[sid].message_id == f"<{sid}@example.ma>" for sid in mine)
        assert (got[theirs].status, got[theirs].lease_owner) == ("leased", "worker-b")  # not this worker's
    finally:
        store.close()
