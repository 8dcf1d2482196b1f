"""The delivery queue's tables, in the subscribers' database, as queries see them (the migrations of
digest.core.database make and change them):

    editions           one row per edition enqueued: frozen (its ranked content, its Date, its slot)
    edition_variants   each variant rendered once at enqueue: what a worker needs to fill a message
    deliveries         the ledger and the queue: one row per (edition, subscriber), with its state,
                       when it may go (not_before), its attempts and last reply, and its lease
    relay_throttle     the relay's rate, shared by every worker: the next free sending slot
    relay_slots        the relay's connections, shared: one leased row per connection in use
    delivery_workers   the workers alive (a heartbeat): the relay's connections are shared among them
    bounce_events      what came back after the send: a bounce (hard, soft, delayed), a complaint or an
                       auto-reply, per message taken in (its key makes reading it twice change nothing)

A delivery's life:

    pending ─┬─▶ leased ──▶ sent
             │     │──────▶ failed | bounced    (5xx: for good; bounced: the address does not exist)
             │     └──────▶ deferred ──▶ (due again at not_before) ──▶ leased …
             ├─▶ superseded                     (the reader's next edition became due first)
             └─▶ cancelled                      (the reader left before it went)
    unneeded                                    (made so: a weekly reader who had every story of the week)
"""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, Date, DateTime, Float, ForeignKey, Index, Integer, String, Table, Text, text

from subscribers.schema import metadata

DUE = text("status IN ('pending', 'deferred')")
LEASED = text("status = 'leased'")

deliveries = Table(
    "deliveries",
    metadata,
    Column("edition", String(64), primary_key=True),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("status", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("message_id", String(255)),
    Column("last_code", Integer),
    Column("last_error", Text),
    Column("not_before", DateTime(timezone=True), nullable=False, default=lambda: datetime.now(UTC)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_expires", DateTime(timezone=True)),
    Column("choice", String(1100)),  # the reader's "locale|rubrics" when the row was made
    Index("ix_deliveries_edition_status", "edition", "status"),
    Index("ix_deliveries_due", "not_before", sqlite_where=DUE, postgresql_where=DUE),
    Index("ix_deliveries_leased", "lease_expires", sqlite_where=LEASED, postgresql_where=LEASED),
    Index("ix_deliveries_subscriber", "subscriber_id"),
)

editions = Table(
    "editions",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("list_id", String(255), nullable=False),
    Column("day", Date, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("enqueued_at", DateTime(timezone=True), nullable=False),
    Column("date_header", DateTime(timezone=True), nullable=False),
    Column("slot", String(64), nullable=False),
    Column("content", Text, nullable=False),
    Column("rhythm", String(8), nullable=False, server_default="daily"),  # daily, weekly
    Column("first_day", Date),  # a weekly edition's first day (its `day` is its last)
    # "" for the edition itself; a weekly edition made again without the stories some readers had
    # already (they switched from daily in mid-week) is a part of it, named by those stories.
    Column("part", String(16), nullable=False, server_default=""),
    Index("ix_editions_list_day", "list_id", "rhythm", "day", "part", "revision", unique=True),
)

edition_variants = Table(
    "edition_variants",
    metadata,
    Column("edition", String(64), ForeignKey("editions.key", ondelete="CASCADE"), primary_key=True),
    Column("variant", String(1100), primary_key=True),
    Column("subject", Text, nullable=False),
    Column("preheader", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("skipped", Text, nullable=False),
)

# Every item gathered, once per story: what an edition of any past day or week is made from again.
items = Table(
    "items",
    metadata,
    Column("key", String(40), primary_key=True),  # the story's identity (digest.delivery.items.identity)
    Column("list_id", String(255), nullable=False),
    Column("day", Date, nullable=False),  # the newsroom's day it was first gathered for
    Column("published", DateTime(timezone=True), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("rubric", String(64), nullable=False),
    Column("score", Float, nullable=False),
    Column("source", String(300), nullable=False),
    Column("url", Text),
    Column("title", Text, nullable=False),
    Column("folded", Text, nullable=False),  # title and excerpt, case and accents folded: what search reads
    Column("content", Text, nullable=False),  # the item as the email shows it (digest.core.frozen)
    Column("revision", Integer, nullable=False),  # 1, then one more for each correction
    Column("kept_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_items_list_day", "list_id", "day"),
)

# What each variant of each edition carried, item by item.
edition_items = Table(
    "edition_items",
    metadata,
    Column("edition", String(64), primary_key=True),
    Column("variant", String(1100), primary_key=True),
    Column("item", String(40), primary_key=True),
    Index("ix_edition_items_item", "item"),
)

relay_throttle = Table(
    "relay_throttle",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("next_slot", Float, nullable=False),  # epoch seconds: the arithmetic stays portable SQL
)

relay_slots = Table(
    "relay_slots",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("owner", String(64)),
    Column("expires", DateTime(timezone=True)),
)

delivery_workers = Table(
    "delivery_workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
)

bounce_events = Table(
    "bounce_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # sha256 of the message's Message-ID (else of its bytes) and the reader's tag: the same message
    # read twice, from a pipe and then from the mailbox, is one event.
    Column("key", String(64), nullable=False, unique=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("edition", String(64), nullable=False),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # hard, soft, delayed, complaint, auto-reply
    Column("status", String(16)),  # the RFC 3463 status (5.1.1), where there was one
    Column("diagnostic", Text),  # the remote server's words, or the complaint's feedback type
    Column("source", String(300), nullable=False),  # the file, the IMAP message, or standard input
    Index("ix_bounce_events_edition", "edition", "kind"),
    Index("ix_bounce_events_subscriber", "subscriber_id"),
)
