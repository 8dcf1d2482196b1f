"""Editions frozen when they are enqueued: the ranked content, the Date of its messages, the slot its
variants were rendered with, and each variant rendered once. A worker on another machine fills
messages from these alone; what readers get at 07:00 in Tokyo is what the editor saw.

An edition's key names the newsletter, the day and, for a correction sent with `--replace`, its
revision: `quotidien.example.ma-2026-11-29`, then `…-2026-11-29.2`. A weekly edition is named by its
last day, `…-week-2026-11-29`, and a part of it (the week made again without the stories some readers
had already) by those stories: `…-week-2026-11-29~3fa9c1`.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from digest.core import frozen
from digest.core.model import Edition, Rendered, Variant
from digest.core.text import printable
from digest.delivery.schema import edition_items, edition_variants, editions
from subscribers.store import Store, as_utc, join_rubrics

OPEN, REPLACED = "open", "replaced"


DAILY, WEEKLY = "daily", "weekly"


def edition_key(list_id: str, day: date, revision: int = 1, rhythm: str = DAILY, part: str = "") -> str:
    """The ledger's and the Message-IDs' name for one day (or week) of one newsletter: the whole list
    id, so two newsletters sharing a database never share an edition (hashed if too long for the ledger)."""
    if len(list_id) > 40:
        list_id = hashlib.sha256(list_id.encode()).hexdigest()[:16]
    week = "week-" if rhythm == WEEKLY else ""
    return (f"{list_id}-{week}{day.isoformat()}" + (f"~{part}" if part else "")
            + (f".{revision}" if revision > 1 else ""))


def variant_key(variant: Variant) -> str:
    return f"{variant.locale}|{join_rubrics(variant.rubrics or frozenset())}"


@dataclass(frozen=True)
class FrozenEdition:
    key: str
    list_id: str
    day: date
    revision: int
    status: str
    enqueued_at: datetime
    date_header: datetime  # the Date of every message of the edition
    slot: str  # what stands for the reader's token in its variants
    edition: Edition
    rhythm: str = DAILY
    part: str = ""


class Editions:
    """The editions table of a store's database."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def open_edition(self, list_id: str, day: date, rhythm: str = DAILY, part: str = "") -> FrozenEdition | None:
        """The day's (or the week's) edition as it was enqueued (its newest revision), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(editions).where(editions.c.list_id == list_id, editions.c.day == day, editions.c.status == OPEN,
                                       editions.c.rhythm == rhythm, editions.c.part == part)
                .order_by(editions.c.revision.desc()).limit(1)
            ).first()
        return _frozen(row) if row else None

    def week_keys(self, list_id: str, day: date) -> list[str]:
        """The keys of the week's edition ending on `day` and of its parts, as enqueued so far."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(editions.c.key).where(
                editions.c.list_id == list_id, editions.c.day == day, editions.c.rhythm == WEEKLY,
                editions.c.status == OPEN)).scalars())

    def get(self, key: str) -> FrozenEdition | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(editions).where(editions.c.key == key)).first()
        return _frozen(row) if row else None

    def freeze(self, list_id: str, edition: Edition, slot: str, date_header: datetime, now: datetime,
               replace: bool = False, part: str = "") -> tuple[FrozenEdition, str | None]:
        """Store the edition; with `replace`, as the day's next revision, the one before marked
        replaced (its key returned so that its unsent rows can be superseded). Two processes freezing
        the same day at once: one wins, and the other gets the winner's edition."""
        rhythm = WEEKLY if edition.weekly else DAILY
        with self.engine.begin() as conn:
            latest = conn.execute(
                select(func.max(editions.c.revision)).where(editions.c.list_id == list_id, editions.c.day == edition.date,
                                                            editions.c.rhythm == rhythm, editions.c.part == part)
            ).scalar_one_or_none() or 0
            replaced = None
            if replace and latest:
                replaced = edition_key(list_id, edition.date, latest, rhythm, part)
                conn.execute(update(editions).where(editions.c.key == replaced).values(status=REPLACED))
            revision = latest + 1 if (replace or not latest) else latest
            key = edition_key(list_id, edition.date, revision, rhythm, part)
            if revision > latest:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(editions).values(
                            key=key, list_id=list_id, day=edition.date, revision=revision, status=OPEN,
                            enqueued_at=now, date_header=date_header, slot=slot, content=frozen.dumps(edition),
                            rhythm=rhythm, first_day=edition.first, part=part))
                except IntegrityError:
                    replaced = None  # another process froze it first: theirs stands
        found = self.get(key)
        assert found is not None
        return found, replaced

    def variants(self, edition: FrozenEdition) -> dict[str, Rendered]:
        """The variants rendered for the edition, by variant key."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(edition_variants).where(edition_variants.c.edition == edition.key)).all()
        return {row.variant: _rendered(row, edition.slot) for row in rows}

    def keep_variant(self, key: str, rendered: Rendered, carried: Iterable[str] = ()) -> None:
        """Store a variant, and the stories it carried (once: a second worker rendering the same one
        keeps the first)."""
        name = variant_key(rendered.variant)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(edition_variants).values(
                    edition=key, variant=name, subject=rendered.subject,
                    preheader=rendered.preheader, html=rendered.html, text=rendered.text,
                    skipped=json.dumps(list(rendered.skipped), ensure_ascii=False)))
                stories = sorted(set(carried))
                if stories:
                    conn.execute(insert(edition_items), [{"edition": key, "variant": name, "item": s} for s in stories])
        except IntegrityError:
            pass


def _frozen(row: Row[Any]) -> FrozenEdition:
    return FrozenEdition(
        key=row.key, list_id=row.list_id, day=row.day, revision=row.revision, status=row.status,
        enqueued_at=as_utc(row.enqueued_at), date_header=as_utc(row.date_header),
        slot=row.slot, edition=frozen.loads(row.content), rhythm=row.rhythm, part=row.part,
    )


def _rendered(row: Row[Any], slot: str) -> Rendered:
    locale, _, rubrics = row.variant.partition("|")
    chosen = frozenset(k for k in rubrics.split(",") if k)
    return Rendered(
        variant=Variant(locale, chosen or None), subject=row.subject, preheader=row.preheader,
        html=row.html, text=row.text, slot=slot, skipped=tuple(printable(s) for s in json.loads(row.skipped)),
    )
