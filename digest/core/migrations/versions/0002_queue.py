"""The ledger becomes the queue: rows carry when they may go and who holds them; editions are frozen
with their rendered variants; the relay's limits are shared through the database; each reader may
choose their hour.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DUE = "status IN ('pending', 'deferred')"


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as table:
        table.alter_column("next_attempt_at", new_column_name="not_before")
        table.add_column(sa.Column("lease_owner", sa.String(64)))
        table.add_column(sa.Column("lease_expires", sa.DateTime(timezone=True)))
    # A row a killed run left `sending` may have gone: due again, as the old ledger would have made it.
    op.execute("UPDATE deliveries SET status = 'pending' WHERE status = 'sending'")
    op.execute("UPDATE deliveries SET not_before = updated_at WHERE not_before IS NULL")
    with op.batch_alter_table("deliveries") as table:
        table.alter_column("not_before", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index("ix_deliveries_due", "deliveries", ["not_before"],
                    sqlite_where=sa.text(DUE), postgresql_where=sa.text(DUE))
    op.create_index("ix_deliveries_leased", "deliveries", ["lease_expires"],
                    sqlite_where=sa.text("status = 'leased'"), postgresql_where=sa.text("status = 'leased'"))
    op.create_index("ix_deliveries_subscriber", "deliveries", ["subscriber_id"])

    op.create_table(
        "editions",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("list_id", sa.String(255), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),  # open | replaced
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("date_header", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slot", sa.String(64), nullable=False),
        sa.Column("content", sa.Text, nullable=False),  # the ranked edition, as JSON
    )
    op.create_index("ix_editions_list_day", "editions", ["list_id", "day", "revision"], unique=True)
    op.create_table(
        "edition_variants",
        sa.Column("edition", sa.String(64), sa.ForeignKey("editions.key", ondelete="CASCADE"), primary_key=True),
        sa.Column("variant", sa.String(1100), primary_key=True),  # locale|rubric,rubric
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("preheader", sa.Text, nullable=False),
        sa.Column("html", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("skipped", sa.Text, nullable=False),  # JSON list of items left out
    )
    op.create_table(
        "relay_throttle",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("next_slot", sa.Float, nullable=False),  # epoch seconds: portable arithmetic in SQL
    )
    op.create_table(
        "relay_slots",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String(64)),
        sa.Column("expires", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "delivery_workers",
        sa.Column("id", sa.String(64), primary_key=True),  # host:pid:random
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("subscribers") as table:
        # "HH:MM" in the reader's zone, "asap" as soon as it is out; NULL: the newsletter's own hour.
        table.add_column(sa.Column("delivery_time", sa.String(8)))


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as table:
        table.drop_column("delivery_time")
    op.drop_table("delivery_workers")
    op.drop_table("relay_slots")
    op.drop_table("relay_throttle")
    op.drop_table("edition_variants")
    op.drop_index("ix_editions_list_day", table_name="editions")
    op.drop_table("editions")
    op.drop_index("ix_deliveries_subscriber", table_name="deliveries")
    op.drop_index("ix_deliveries_leased", table_name="deliveries")
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    with op.batch_alter_table("deliveries") as table:
        table.drop_column("lease_expires")
        table.drop_column("lease_owner")
        table.alter_column("not_before", new_column_name="next_attempt_at", nullable=True)
