"""Who receives the digest: the Subscriber record that crosses stages."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.core.locales import LOCALES

__all__ = ["CONFIRMED", "LOCALES", "STATUSES", "Subscriber"]

# pending: signed up through the form, not confirmed yet; never sent an edition, removed at expiry.
STATUSES: tuple[str, ...] = ("active", "unsubscribed", "bounced", "pending")
CONFIRMED: tuple[str, ...] = STATUSES[:3]  # the statuses of a list made without the sign-up form


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str  # as validated: ASCII local part, domain as IDNA A-label, lowercased domain
    name: str
    locale: str  # fr, en, ar
    timezone: str  # IANA name
    rubrics: frozenset[str]  # chosen rubric keys; empty: every rubric
    status: str  # active, unsubscribed, bounced, pending
    created_at: datetime
    updated_at: datetime
    delivery_time: str | None = None  # "HH:MM" in their zone, "asap"; None: the newsletter's hour
