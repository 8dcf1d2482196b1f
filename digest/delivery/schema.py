"""The delivery ledger's table: one row per (edition, subscriber), in the subscribers' database.

A row points at its subscriber (removing a subscriber removes their rows). The table is made, and
changed, by the migrations of digest.core.database; this is its shape as queries see it.
"""
from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from subscribers.schema import metadata

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
