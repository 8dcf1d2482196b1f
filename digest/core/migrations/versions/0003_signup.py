"""Readers sign themselves up: sign-ups waiting for their confirmation, the consent history, the keyed
hashes of erased addresses, and the sign-up form's limits shared by every `digest serve` process.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signups",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("rubrics", sa.String(1000), nullable=False),
        sa.Column("wording", sa.String(64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,  # an id is never used twice: a confirmation link names one
    )
    op.create_index("ix_signups_subscriber", "signups", ["subscriber_id"])
    op.create_index("ix_signups_expires", "signups", ["expires_at"])
    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(24), nullable=False),
        sa.Column("channel", sa.String(24), nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("wording", sa.String(64)),
        sa.Column("network", sa.String(64)),
        sa.Column("user_agent", sa.String(300)),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_consent_events_email", "consent_events", ["email", "id"])
    op.create_table(
        "erasures",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(24), nullable=False),
    )
    op.create_table(
        "signup_counters",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_signup_counters_expires", "signup_counters", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_signup_counters_expires", table_name="signup_counters")
    op.drop_table("signup_counters")
    op.drop_table("erasures")
    op.drop_index("ix_consent_events_email", table_name="consent_events")
    op.drop_table("consent_events")
    op.drop_index("ix_signups_expires", table_name="signups")
    op.drop_index("ix_signups_subscriber", table_name="signups")
    op.drop_table("signups")
