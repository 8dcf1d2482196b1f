"""Each reader's rhythm, from one store of the newsroom's items.

    items            every item gathered, once per story (its identity: the canonical URL, else the
                     source and the title); a correction replaces it
    edition_items    what each variant of each edition carried: no story reaches a reader twice
    editions         + rhythm (daily, weekly), first_day (a week's first day), part (a weekly edition
                     made for the readers who had some of its stories already)
    deliveries       + choice: the reader's language and rubrics when the row was made
    subscribers      + cadence (daily, weekly) and weekday (0 Monday … 6 Sunday; NULL: the newsroom's)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("key", sa.String(40), primary_key=True),
        sa.Column("list_id", sa.String(255), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("published", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rubric", sa.String(64), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("url", sa.Text),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("folded", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("kept_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_items_list_day", "items", ["list_id", "day"])
    op.create_table(
        "edition_items",
        sa.Column("edition", sa.String(64), primary_key=True),
        sa.Column("variant", sa.String(1100), primary_key=True),
        sa.Column("item", sa.String(40), primary_key=True),
    )
    op.create_index("ix_edition_items_item", "edition_items", ["item"])
    with op.batch_alter_table("editions") as table:
        table.add_column(sa.Column("rhythm", sa.String(8), nullable=False, server_default="daily"))
        table.add_column(sa.Column("first_day", sa.Date))
        table.add_column(sa.Column("part", sa.String(16), nullable=False, server_default=""))
    op.drop_index("ix_editions_list_day", table_name="editions")
    op.create_index("ix_editions_list_day", "editions", ["list_id", "rhythm", "day", "part", "revision"], unique=True)
    with op.batch_alter_table("deliveries") as table:
        table.add_column(sa.Column("choice", sa.String(1100)))
    with op.batch_alter_table("subscribers") as table:
        table.add_column(sa.Column("cadence", sa.String(8), nullable=False, server_default="daily"))
        table.add_column(sa.Column("weekday", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as table:
        table.drop_column("weekday")
        table.drop_column("cadence")
    with op.batch_alter_table("deliveries") as table:
        table.drop_column("choice")
    op.drop_index("ix_editions_list_day", table_name="editions")
    op.create_index("ix_editions_list_day", "editions", ["list_id", "day", "revision"], unique=True)
    with op.batch_alter_table("editions") as table:
        table.drop_column("part")
        table.drop_column("first_day")
        table.drop_column("rhythm")
    op.drop_index("ix_edition_items_item", table_name="edition_items")
    op.drop_table("edition_items")
    op.drop_index("ix_items_list_day", table_name="items")
    op.drop_table("items")
