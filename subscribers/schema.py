"""The database schema, written once with SQLAlchemy Core for SQLite (default) and PostgreSQL.

Two tables: the audience (`subscribers`) and the delivery ledger (`deliveries`, one row per
edition and subscriber). Times are stored as UTC.
"""
from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
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
    Index("ix_subscribers_status_variant", "status", "locale", "rubrics"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("edition", String(64), primary_key=True),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    # pending → sending → sent | failed (permanent) | deferred (retry at next_attempt_at)
    Column("status", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("message_id", String(255)),
    Column("last_code", Integer),
    Column("last_error", Text),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_deliveries_edition_status", "edition", "status"),
)
