"""Passes over the list by status in id order (the dry run, `subscribers list --status`, `export
--status`): an index on (status, id), so each page of the keyset pagination is a range of one index,
never a sort of every row of that status (a temporary B-tree at a million readers).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_subscribers_status_id", "subscribers", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_subscribers_status_id", table_name="subscribers")
