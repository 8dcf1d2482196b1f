"""Bounces and complaints that arrive after the send: what came back, per message taken in, and each
reader's soft-bounce score.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as table:
        table.add_column(sa.Column("bounce_score", sa.Float, nullable=False, server_default="0"))
        table.add_column(sa.Column("bounce_score_at", sa.DateTime(timezone=True)))
    op.create_table(
        "bounce_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("edition", sa.String(64), nullable=False),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16)),
        sa.Column("diagnostic", sa.Text),
        sa.Column("source", sa.String(300), nullable=False),
    )
    op.create_index("ix_bounce_events_edition", "bounce_events", ["edition", "kind"])
    op.create_index("ix_bounce_events_subscriber", "bounce_events", ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_bounce_events_subscriber", table_name="bounce_events")
    op.drop_index("ix_bounce_events_edition", table_name="bounce_events")
    op.drop_table("bounce_events")
    with op.batch_alter_table("subscribers") as table:
        table.drop_column("bounce_score_at")
        table.drop_column("bounce_score")
