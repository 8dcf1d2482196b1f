"""The database's schema comes from its migrations, on SQLite and on PostgreSQL: a new database gets
the newest schema, one made before migrations existed is carried forward with its rows, and several
processes opening one database at once migrate it once."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

import digest.delivery.schema  # noqa: F401  (its table joins the metadata)
from digest.core.database import HEAD, current, head, migrate, open_engine
from subscribers.schema import metadata
from subscribers.store import Store

from support.paths import ROOT

# The schema the landed release made with create_all, before migrations: what a newsroom's digest.db holds.
BEFORE_MIGRATIONS = """
CREATE TABLE subscribers (id INTEGER NOT NULL, email VARCHAR(320) NOT NULL, name VARCHAR(200) NOT NULL,
    locale VARCHAR(8) NOT NULL, timezone VARCHAR(64) NOT NULL, rubrics VARCHAR(1000) NOT NULL,
    status VARCHAR(16) NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL,
    PRIMARY KEY (id), UNIQUE (email));
CREATE INDEX ix_subscribers_status_variant ON subscribers (status, locale, rubrics);
CREATE TABLE deliveries (edition VARCHAR(64) NOT NULL, subscriber_id INTEGER NOT NULL, status VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL, message_id VARCHAR(255), last_code INTEGER, last_error TEXT,
    next_attempt_at DATETIME, updated_at DATETIME NOT NULL, PRIMARY KEY (edition, subscriber_id),
    FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE);
CREATE INDEX ix_deliveries_edition_status ON deliveries (edition, status);
INSERT INTO subscribers VALUES (1, 'salma@example.ma', 'Salma', 'fr', 'Africa/Casablanca', 'economie', 'active',
    '2026-11-01 08:00:00.000000', '2026-11-01 08:00:00.000000');
INSERT INTO deliveries VALUES ('quotidien-2026-11-28', 1, 'sent', 1, '<m@x>', 250, NULL, NULL,
    '2026-11-28 21:30:00.000000');
"""


def test_a_new_database_has_exactly_the_schema_the_code_queries(database):
    store = Store.open(database)
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
        assert MigrationContext.configure(connection).get_current_revision() == head()
    store.close()
    assert differences == []


def test_a_database_made_before_migrations_is_carried_forward_with_its_rows(tmp_path):
    path = tmp_path / "digest.db"
    with sqlite3.connect(path) as old:
        old.executescript(BEFORE_MIGRATIONS)
    old.close()
    store = Store.open(path)
    assert store.get("salma@example.ma").rubrics == frozenset({"economie"})
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT status FROM deliveries")).scalar_one() == "sent"
        assert MigrationContext.configure(connection).get_current_revision() == head()
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    store.close()


def test_the_newest_revision_the_code_knows_is_alembics_head(database):
    # A new migration without HEAD moved on would be skipped by every database at the old head.
    assert head() == HEAD
    store = Store.open(database)
    with store.engine.connect() as connection:
        assert current(connection) == MigrationContext.configure(connection).get_current_revision() == HEAD
    store.close()


def test_opening_a_database_at_its_newest_revision_changes_nothing(database):
    Store.open(database).close()
    engine = open_engine(database if "://" in database else f"sqlite:///{database}")
    before = sorted(inspect(engine).get_table_names())
    migrate(engine)
    assert sorted(inspect(engine).get_table_names()) == before
    engine.dispose()


def test_several_processes_opening_one_new_database_at_once_migrate_it_once(database):
    code = ("import sys; from subscribers.store import Store; "
            "store = Store.open(sys.argv[1]); store.add(sys.argv[2]); store.close()")
    processes = [subprocess.Popen([sys.executable, "-c", code, database, f"reader{i}@example.ma"], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    store = Store.open(database)
    assert store.count()["active"] == 4
    store.close()


def test_the_time_columns_read_back_as_utc(tmp_path):
    store = Store.open(tmp_path / "d.db")
    added = store.add("omar@example.ma", created_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC))
    assert store.get_by_id(added.id).created_at == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    store.close()
