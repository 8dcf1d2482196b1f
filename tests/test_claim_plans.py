"""A claim costs the same with ten thousand rows pending or a million (tests/benchmarks/bench_queue.py
claims measures it): each of its statements reads the due rows' index in order, and every other row by
its key, never a walk over the edition's rows or a sort of them. Checked on the plans the first claim
after an enqueue gets, on SQLite and on PostgreSQL."""
from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import insert, text

from digest.delivery.queue import Queue
from digest.delivery.schema import editions
from subscribers.store import Store

from support.plans import explain, statements

EDITION = "quotidien.lequotidien.example.ma-2026-11-29"
READERS = 20_000  # enough for PostgreSQL to prefer an index to reading the whole table


def _fill(store: Store, count: int) -> None:
    """`count` active readers in one INSERT (the store's own API takes seconds for this many), and the
    edition they are due."""
    postgres = store.engine.dialect.name == "postgresql"
    numbers = (f"SELECT g AS i FROM generate_series(1, {count}) AS g" if postgres else
               f"SELECT i FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {count}) SELECT i FROM c)")
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO subscribers (email, name, locale, timezone, rubrics, status, created_at, updated_at) "
                          f"SELECT 'reader' || n.i || '@example.com', '', 'fr', 'Africa/Casablanca', '', 'active', "
                          f":at, :at FROM ({numbers}) AS n"), {"at": datetime(2026, 11, 1, tzinfo=UTC)})
        conn.execute(insert(editions).values(key=EDITION, list_id="quotidien.lequotidien.example.ma", day=date(2026, 11, 29),
                                             revision=1, status="open", enqueued_at=datetime(2026, 11, 29, 5, tzinfo=UTC),
                                             date_header=datetime(2026, 11, 29, 5, tzinfo=UTC), slot="x", content="{}"))


def test_every_statement_of_a_claim_reads_through_an_index(database):
    store = Store.open(database)
    try:
        _fill(store, READERS)
        queue = Queue(store)
        assert queue.add_rows(EDITION, datetime(2026, 11, 29, 5, tzinfo=UTC), None) == READERS
        postgres = store.engine.dialect.name == "postgresql"
        for only in ([EDITION], None):  # as `digest send` claims (its edition), and as `digest worker` (any)
            with statements(store.engine) as seen:
                assert len(queue.claim(80, only)) == 80
            plans = {statement: explain(store.engine, statement, parameters) for statement, parameters in seen}
            due = [plan for statement, plan in plans.items() if "not_before <=" in statement and "LIMIT" in statement]
            assert len(due) == 1 and "ix_deliveries_due" in due[0], due
            assert "Sort" not in due[0] and "Bitmap" not in due[0], due  # the due rows read in order, 80 and no more
            for statement, plan in plans.items():
                if postgres:  # a walk: the whole table, or every row of the edition through its index
                    assert "Seq Scan on deliveries" not in plan, (statement, plan)
                    assert "Bitmap Index Scan on ix_deliveries_edition_status" not in plan, (statement, plan)
                else:
                    assert "SCAN deliveries" not in plan and "TEMP B-TREE FOR ORDER BY" not in plan, (statement, plan)
    finally:
        store.close()
