"""Who receives the digest: the Subscriber record that crosses stages."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.core.locales import LOCALES

__all__ = ["ASAP", "CADENCES", "CONFIRMED", "LOCALES", "NEWSLETTER_HOUR", "NEWSROOM_DAY", "STATUSES", "Subscriber"]

# pending: signed up through the form, not confirmed yet; never sent an edition, removed at expiry.
STATUSES: tuple[str, ...] = ("active", "unsubscribed", "bounced", "pending")
CONFIRMED: tuple[str, ...] = STATUSES[:3]  # the statuses of a list made without the sign-up form
# A reader's delivery_time: "HH:MM" where they live, or ASAP, as soon as the edition is out.
ASAP = "asap"
# Given as a change of delivery_time: back to the newsletter's own hour (stored as NULL), where None
# means "not given" as for every other field.
NEWSLETTER_HOUR = ""
# A reader's rhythm: every day, or once a week on their weekday (0 Monday … 6 Sunday; None: the
# newsroom's [delivery] weekly_day). A daily reader may keep a weekday: the day they get once weekly.
CADENCES: tuple[str, ...] = ("daily", "weekly")
# Given as a change of weekday: back to the newsroom's day (stored as NULL), as NEWSLETTER_HOUR for hours.
NEWSROOM_DAY = -1


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
    delivery_time: str | None = None  # "HH:MM" in their zone, or ASAP; None: the newsletter's hour
    cadence: str = "daily"  # daily, weekly
    weekday: int | None = None  # 0 Monday … 6 Sunday, for weekly; None: the newsroom's weekly_day
