"""The audience's table, written once with SQLAlchemy Core for SQLite (default) and PostgreSQL.

Times are stored as UTC. Other floors add their tables to the same `metadata` (the delivery ledger's
rows point at a subscriber), and each creates its own.
"""
from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

metadata = MetaData()

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("locale", String(8), nullable=False, default="fr"),
    Column("timezone", String(64), nullable=False, default="UTC"),
    # Chosen rubric keys, sorted and joined with ",": empty means every rubric. A string, not a
    # second table, because the sender groups subscribers by it (one rendered variant per value).
    Column("rubrics", String(1000), nullable=False, default=""),
    Column("status", String(16), nullable=False, default="active"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # When the reader wants the edition: "HH:MM" in their zone, "asap" as soon as it is out; NULL:
    # the newsletter's own hour ([delivery] local_time), or at once without one.
    Column("delivery_time", String(8)),
    Index("ix_subscribers_status_variant", "status", "locale", "rubrics"),
)
