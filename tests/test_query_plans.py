"""Every pass over the list reads one index range per page, on SQLite and on PostgreSQL: the keyset
pages of one status (the dry run, `subscribers list --status`, `export --status`) use the index on
(status, id) and never sort the rows of that status, so a page costs the same at 10,000 readers as at
a million. The plans are read from the databases themselves (EXPLAIN) over a list large enough for
PostgreSQL's planner to choose as it would in production."""
from __future__ import annotations

from sqlalchemy import text

from subscribers.store import Store, page_query

READERS = 20_000


def fill(store: Store) -> None:
    """READERS subscribers, one in ten unsubscribed, made by the database in one statement."""
    with store.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(
                "INSERT INTO subscribers (email, name, locale, timezone, rubrics, status, created_at, updated_at, bounce_score) "
                "SELECT 'r' || n || '@example.net', '', 'fr', 'UTC', '', CASE WHEN n % 10 = 0 THEN 'unsubscribed' "
                "ELSE 'active' END, now(), now(), 0 FROM generate_series(1, :n) AS n"), {"n": READERS})
            conn.execute(text("ANALYZE subscribers"))
        else:
            conn.execute(text(
                "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :n) "
                "INSERT INTO subscribers (email, name, locale, timezone, rubrics, status, created_at, updated_at, bounce_score) "
                "SELECT 'r' || n || '@example.net', '', 'fr', 'UTC', '', CASE WHEN n % 10 = 0 THEN 'unsubscribed' "
                "ELSE 'active' END, datetime('now'), datetime('now'), 0 FROM seq"), {"n": READERS})
            conn.execute(text("ANALYZE"))


def plan(store: Store, status: str, after: int) -> str:
    query = page_query(status, after, 1000)
    with store.engine.connect() as conn:
        compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
        prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
        rows = conn.execute(text(prefix + str(compiled))).all()
    return "\n".join(str(row[-1]) for row in rows)


def test_a_page_of_one_status_is_a_range_of_the_status_id_index_with_no_sort(database):
    store = Store.open(database, create=True)
    try:
        fill(store)
        for status, after in (("active", 0), ("active", READERS // 2), ("unsubscribed", 0), ("bounced", 0)):
            found = plan(store, status, after)
            if store.engine.dialect.name == "sqlite":
                assert "ix_subscribers_status_id" in found, found
                assert "TEMP B-TREE" not in found.upper(), found
            else:  # a common status may walk the primary key and skip the others: no sort either way
                assert "Index" in found and "Sort" not in found and "Seq Scan" not in found, found
                if status != "active":  # a rare one must not walk the whole list to find its few rows
                    assert "ix_subscribers_status_id" in found, found
        pages = list(store.iter_subscribers("unsubscribed", batch=500))
        assert len(pages) == READERS // 10 and [s.id for s in pages] == sorted(s.id for s in pages)
    finally:
        store.close()
