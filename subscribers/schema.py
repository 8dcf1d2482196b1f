"""The audience's tables, written once with SQLAlchemy Core for SQLite (default) and PostgreSQL.

    subscribers       who is on the list, with their choices and status (pending until confirmed)
    signups           a sign-up waiting for its confirmation: the choices it asked for, until it expires
    consent_events    every change of a reader's state: when, how, from which form or command, where from
    erasures          a keyed hash of each erased address (never the address itself)
    signup_counters   the sign-up form's limits, shared by every `digest serve` process

Times are stored as UTC. Other floors add their tables to the same `metadata` (the delivery ledger's
rows point at a subscriber); the migrations of digest.core.database make them all.
"""
from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Float,
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
    # When the reader wants the edition: "HH:MM" in their zone, "asap" as soon as it is out; NULL:
    # the newsletter's own hour ([delivery] local_time), or at once without one.
    Column("delivery_time", String(8)),
    # Soft bounces (a full mailbox, a 4xx given up on, a policy refusal) add 1 to a score that halves
    # every [bounces] soft_half_life_days from bounce_score_at; at soft_threshold the reader is bounced.
    Column("bounce_score", Float, nullable=False, default=0.0, server_default="0"),
    Column("bounce_score_at", DateTime(timezone=True)),
    # The reader's rhythm: "daily", or "weekly" on `weekday` (0 Monday … 6 Sunday; NULL: the
    # newsroom's [delivery] weekly_day), at their hour as for daily.
    Column("cadence", String(8), nullable=False, default="daily", server_default="daily"),
    Column("weekday", Integer),
    Index("ix_subscribers_status_variant", "status", "locale", "rubrics"),
    # Keyset pages of one status in id order (Store.iter_subscribers): a range of this index, no sort.
    Index("ix_subscribers_status_id", "status", "id"),
    # An enqueue's readers of one (zone, chosen hour), one INSERT … SELECT each: a range of this index.
    Index("ix_subscribers_status_zone_hour", "status", "timezone", "delivery_time"),
)

signups = Table(
    "signups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    # What the form asked for, applied when the link is followed: a stranger may have typed it.
    Column("name", String(200), nullable=False),
    Column("locale", String(8), nullable=False),
    Column("rubrics", String(1000), nullable=False),
    Column("wording", String(64), nullable=False),  # the consent text's version the form showed
    Column("cadence", String(8), nullable=False, default="daily", server_default="daily"),  # as subscribers'
    Column("weekday", Integer),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_signups_subscriber", "subscriber_id"),
    Index("ix_signups_expires", "expires_at"),
    # A confirmation link names its sign-up by id: an id is never used twice, even after its row is
    # deleted (SQLite would otherwise reuse the highest), so an old link can never confirm a new sign-up.
    sqlite_autoincrement=True,
)

consent_events = Table(
    "consent_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # By address, not by a foreign key: an editor's `remove` deletes the record, not its history.
    Column("email", String(320), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("event", String(24), nullable=False),  # signed_up, confirmed, added, changed, unsubscribed, …
    Column("channel", String(24), nullable=False),  # form, preferences, one-click, mailto, import, cli, delivery, api
    Column("source", String(300), nullable=False),  # the form's page or the command
    Column("wording", String(64)),  # the consent text's version, where one was shown
    Column("network", String(64)),  # the client's network (a /24 or /64), where there was one
    Column("user_agent", String(300)),
    Column("detail", Text),  # what changed, as JSON
    Index("ix_consent_events_email", "email", "id"),
)

erasures = Table(
    "erasures",
    metadata,
    Column("digest", String(64), primary_key=True),  # HMAC-SHA256 of the address, hex, under a signing key
    Column("version", Integer, nullable=False),  # the key's version
    Column("erased_at", DateTime(timezone=True), nullable=False),
    Column("channel", String(24), nullable=False),
)

signup_counters = Table(
    "signup_counters",
    metadata,
    Column("key", String(128), primary_key=True),  # rule:keyed hash:window
    Column("count", Integer, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_signup_counters_expires", "expires_at"),
)
