"""Enqueueing reads each (time zone, chosen hour) of the active readers through an index: one INSERT …
SELECT per pair (digest.delivery.queue.add_rows), each a range of (status, timezone, delivery_time),
instead of a walk over every active reader per pair (18 walks of the list for 6 zones and 3 hours; a
list read the world over has dozens of zones).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_subscribers_status_zone_hour", "subscribers", ["status", "timezone", "delivery_time"])


def downgrade() -> None:
    op.drop_index("ix_subscribers_status_zone_hour", table_name="subscribers")
