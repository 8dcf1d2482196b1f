"""Every pass over the list reads one index range per page, on SQLite and on PostgreSQL, so that a pass
costs the same per reader at 10,000 readers as at a million (tests/benchmarks/bench_passes.py measures
it): the keyset pages of one status (the dry run, `subscribers list --status`, `export --status`) use
the index on (status, id) and never sort the rows of that status; the pages of the whole list (`list`,
`export`) are ranges of the primary key; an enqueue reads each (time zone, chosen hour) of the active
readers as a range of the index on (status, timezone, delivery_time), not a walk of the list per pair.
The plans are read from the databases themselves (EXPLAIN) over a list large enough for PostgreSQL's
planner to choose as it would in production, with the statements the store and the queue really run."""
from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import insert, text

from digest.delivery.queue import Queue
from digest.delivery.schema import editions
from subscribers.schema import subscribers
from subscribers.store import Store, page_query

from support.plans import explain, statements

READERS = 20_000
EDITION = "quotidien.lequotidien.example.ma-2026-11-29"
ZONES = ("Africa/Casablanca", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Pacific/Auckland", "America/Los_Angeles")


def fill(store: Store) -> None:
    """READERS subscribers made by the database in one statement: one in ten unsubscribed, one in fifty
    bounced, six time zones, one in ten at an hour of their own and one in twenty as soon as it is out;
    and the edition an enqueue gives them rows of."""
    postgres = store.engine.dialect.name == "postgresql"
    numbers = (f"SELECT g AS n FROM generate_series(1, {READERS}) AS g" if postgres else
               f"SELECT n FROM (WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < {READERS}) SELECT n FROM c)")
    zone = "CASE " + " ".join(f"WHEN (s.n / 7) % 6 = {i} THEN '{z}'" for i, z in enumerate(ZONES)) + " END"
    with store.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO subscribers (email, name, locale, timezone, rubrics, status, created_at, updated_at, "
            "delivery_time, bounce_score) "
            f"SELECT 'r' || s.n || '@example.net', '', 'fr', {zone}, '', CASE WHEN s.n % 10 = 0 THEN 'unsubscribed' "
            "WHEN s.n % 50 = 1 THEN 'bounced' ELSE 'active' END, :at, :at, "
            f"CASE WHEN s.n % 10 = 3 THEN '06:30' WHEN s.n % 20 = 7 THEN 'asap' END, 0 FROM ({numbers}) AS s"),
            {"at": datetime(2026, 11, 1, tzinfo=UTC)})
        conn.execute(insert(editions).values(key=EDITION, list_id="quotidien.lequotidien.example.ma", day=date(2026, 11, 29),
                                             revision=1, status="open", enqueued_at=datetime(2026, 11, 29, 20, tzinfo=UTC),
                                             date_header=datetime(2026, 11, 29, 20, tzinfo=UTC), slot="x", content="{}"))
    with store.engine.connect() as conn:  # as autovacuum has long done on a list that grew over months
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def pass_plans(store: Store, run) -> list[str]:  # noqa: ANN001
    """The plans of the statements on the subscribers table that `run` (a pass) makes."""
    with statements(store.engine) as seen:
        run()
    found = [explain(store.engine, s, p) for s, p in seen if "FROM subscribers" in s]
    assert found, "the pass read nothing"
    return found


def plan(store: Store, status: str | None, after: int) -> str:
    query = page_query(status, after, 1000)
    with store.engine.connect() as conn:
        compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
        prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
        rows = conn.execute(text(prefix + str(compiled))).all()
    return "\n".join(str(row[-1]) for row in rows)


def test_every_pass_over_the_list_reads_through_its_index_with_no_sort(database):
    store = Store.open(database, create=True)
    try:
        fill(store)
        sqlite = store.engine.dialect.name == "sqlite"
        for status, after in (("active", 0), ("active", READERS // 2), ("unsubscribed", 0), ("bounced", 0),
                              (None, 0), (None, READERS // 2)):
            found = plan(store, status, after)
            if sqlite:
                wanted = "ix_subscribers_status_id" if status else "INTEGER PRIMARY KEY"
                assert wanted in found and "SCAN" not in found and "TEMP B-TREE" not in found.upper(), (status, found)
            elif status in (None, "active"):  # a common status may walk the primary key and skip the others
                assert "Index" in found and "Sort" not in found and "Seq Scan" not in found, (status, found)
            else:  # a rare one is found through an index on its status, never by a walk of the whole list:
                # (status, id) in order, or (while it has a few hundred rows) a bitmap of them, sorted
                assert "ix_subscribers_status_" in found and "Seq Scan" not in found, (status, found)
        c = subscribers.c
        passes = {  # what the dry run, `list`/`export` with and without --status read, page after page
            "dry run": lambda: sum(1 for _ in store.iter_rows((c.id, c.email, c.name, c.locale, c.rubrics), "active")),
            "list --status": lambda: sum(1 for _ in store.iter_subscribers("unsubscribed", batch=500)),
            "list": lambda: sum(1 for _ in store.iter_subscribers(batch=5000)),
        }
        for name, run in passes.items():
            for found in pass_plans(store, run):
                assert "Sort" not in found and "Seq Scan" not in found and "TEMP B-TREE" not in found, (name, found)
                assert "SCAN" not in found, (name, found)  # SQLite: a SEARCH of a range, never a walk
        pages = list(store.iter_subscribers("unsubscribed", batch=500))
        assert len(pages) == READERS // 10 and [s.id for s in pages] == sorted(s.id for s in pages)
    finally:
        store.close()


def test_an_enqueue_reads_each_zone_and_hour_as_a_range_of_its_index(database):
    """One INSERT … SELECT per (zone, chosen hour): each reads its own readers, not every active one."""
    store = Store.open(database, create=True)
    try:
        fill(store)
        with statements(store.engine) as seen:
            added = Queue(store).add_rows(EDITION, datetime(2026, 11, 29, 20, 30, tzinfo=UTC), "07:00")
        active = READERS - READERS // 10 - READERS // 50
        assert added == active
        inserts = [(s, p) for s, p in seen if s.lstrip().upper().startswith("INSERT INTO DELIVERIES")]
        assert len(inserts) == len(ZONES) * 3  # the newsletter's hour, 06:30, asap
        with store.engine.begin() as conn:  # the plans of a first enqueue: no rows of this edition yet
            conn.execute(text("DELETE FROM deliveries"))
        for statement, parameters in inserts:
            found = explain(store.engine, statement, parameters)
            assert "ix_subscribers_status_zone_hour" in found, found
            assert "Seq Scan on subscribers" not in found and "SCAN subscribers" not in found, found
    finally:
        store.close()


def test_counting_the_list_is_one_pass_with_no_sort(database):
    """`subscribers count` (and the send's check that the list is not empty): one pass, grouped as it
    goes (SQLite: over a covering index, never the table's rows; PostgreSQL: an index-only scan once
    the table is vacuumed, before that a sequential one into a hash of the four statuses), never a sort."""
    store = Store.open(database, create=True)
    try:
        fill(store)
        for found in pass_plans(store, store.count):
            assert "Sort" not in found and "TEMP B-TREE" not in found, found
            if store.engine.dialect.name == "sqlite":
                assert "COVERING INDEX" in found, found
    finally:
        store.close()
