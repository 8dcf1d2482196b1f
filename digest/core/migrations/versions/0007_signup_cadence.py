"""A sign-up asks how often too: the cadence (daily, weekly) and weekday (0 Monday … 6 Sunday; NULL:
the newsroom's) the form chose, applied to the reader when they confirm.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("signups") as table:  # adding columns: SQLite alters in place, no copy
        table.add_column(sa.Column("cadence", sa.String(8), nullable=False, server_default="daily"))
        table.add_column(sa.Column("weekday", sa.Integer))


def downgrade() -> None:
    # Dropping makes SQLite copy the table: it keeps its AUTOINCREMENT (an id never used twice).
    with op.batch_alter_table("signups", table_kwargs={"sqlite_autoincrement": True}) as table:
        table.drop_column("weekday")
        table.drop_column("cadence")
