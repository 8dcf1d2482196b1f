"""Enqueue an edition: freeze it (its content, its Date, a slot no source can know, each variant the
active readers chose, rendered once), publish its web page, and give every active reader a row due at
their hour. Idempotent: the day's edition is frozen once, and enqueueing it again only adds the rows of
readers who subscribed since; a correction (`replace`) is a new revision that supersedes the rows the
previous one has not sent yet.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from sqlalchemy import ColumnElement, and_

from digest.core.clock import Clock
from digest.core.config import Settings
from digest.core.errors import DigestError
from digest.core.model import Edition
from digest.delivery.compose import Composer
from digest.delivery.editions import WEEKLY, Editions, FrozenEdition, edition_key
from digest.delivery.items import Kept
from digest.delivery.personalize import new_slot
from digest.delivery.queue import Queue
from digest.delivery.rhythms import (
    DAILY_READERS,
    has_weekly_readers,
    keep_day,
    make_week,
    newcomers,
    week_of,
    weekly_readers,
)
from digest.pipeline.archive import write_page
from digest.pipeline.edition import DayEdition, Timings, publish_archive, refuse_empty
from digest.pipeline.gather import Gathered
from subscribers.schema import subscribers
from subscribers.store import Store, join_rubrics
from subscribers.tokens import TOKEN_LENGTH, Tokens


@dataclass(frozen=True)
class Enqueued:
    frozen: FrozenEdition
    fresh: bool  # frozen by this call (False: it was enqueued already)
    added: int  # rows made by this call
    rendered: int  # variants rendered by this call
    replaced: str | None  # the revision this one superseded
    skipped: tuple[str, ...] = ()  # items a variant could not render, left out (printable)
    kept: Kept | None = None  # the day's items kept in the store (new, corrected, unchanged)
    readers: tuple[int, ...] = ()  # a weekly part's readers


def date_header(clock: Clock) -> datetime:
    """The Date of an edition's messages; SOURCE_DATE_EPOCH (the reproducible-builds convention) pins it."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), UTC)
    return clock.now()


def draft(settings: Settings, day_edition: DayEdition, slot: str | None = None, clock: Clock | None = None) -> FrozenEdition:
    """The edition as it would be frozen: for a dry run, a test copy, or to be enqueued."""
    clock = clock or Clock()
    edition = day_edition.edition
    return FrozenEdition(key=edition_key(settings.newsletter.list_id, edition.date), list_id=settings.newsletter.list_id,
                         day=edition.date, revision=1, status="draft", enqueued_at=clock.now(),
                         date_header=date_header(clock), slot=slot or new_slot(TOKEN_LENGTH), edition=edition)


def enqueue(settings: Settings, store: Store, tokens: Tokens, clock: Clock, day: date,
            prepare: Callable[[], DayEdition], replace: bool = False, slot: str | None = None) -> Enqueued:
    """The day's edition enqueued; `prepare` (gathering the sources) is called only when the edition
    is not frozen yet, or when it is replaced. `slot`: the one to render with (else a new one)."""
    editions = Editions(store)
    list_id = settings.newsletter.list_id
    frozen = None if replace else editions.open_edition(list_id, day)
    fresh, rendered, replaced = False, 0, None
    skipped: tuple[str, ...] = ()
    kept = None
    if frozen is None:
        prepared = prepare()
        refuse_empty(prepared, "nothing is sent")
        prepared, kept = keep_day(settings, store, prepared, clock.now())
        if not prepared.edition.items:
            raise DigestError("every story of the day went out in an earlier edition already: nothing is sent",
                              "check the sources and --date")
        made = draft(settings, prepared, slot, clock)
        frozen, replaced = editions.freeze(list_id, made.edition, made.slot, made.date_header, clock.now(), replace)
        fresh = frozen.slot == made.slot  # ours, not a concurrent enqueue's
        if fresh:
            rendered, skipped = _render_variants(settings, store, tokens, editions, frozen, DAILY_READERS)
            publish_archive(prepared)  # the page the messages' "view in your browser" link opens
    queue = Queue(store, clock)
    if replaced:
        queue.supersede(replaced)
    added = queue.add_rows(frozen.key, clock.now(), settings.delivery.local_time, who=DAILY_READERS)
    return Enqueued(frozen, fresh, added, rendered, replaced, skipped, kept)


def enqueue_week(settings: Settings, store: Store, tokens: Tokens, clock: Clock, day: date) -> list[Enqueued]:
    """On a weekly day, the week's edition (and its parts) enqueued for the weekly readers of that day,
    from the store of items: frozen once, then only readers who subscribed since are added. Nothing
    when no active reader has that day."""
    if not has_weekly_readers(settings, store, day):
        return []
    list_id = settings.newsletter.list_id
    editions = Editions(store)
    this_week = editions.week_keys(list_id, day)
    week = make_week(settings, store, day, this_week)
    if week is None and not this_week:
        raise DigestError(f"the store of items holds nothing of the week from {week_of(day)} to {day}: "
                          "no weekly edition", "gather the week's days first (digest items gather --date D)")
    planned: list[tuple[str, Edition | None, tuple[int, ...]]] = [*(week.parts if week else ()),
                                                                  ("", week.edition if week else None, ())]
    frozen = [_freeze_week(settings, store, tokens, editions, clock, day, name, edition, readers)
              for name, edition, readers in planned]
    # A reader gets one of the week's editions: the part made for them, else the week itself.
    newcomer = newcomers(settings, day, editions.week_keys(list_id, day))  # every part so far, not only today's
    queue = Queue(store, clock)
    out = []
    for enqueued in frozen:
        key, hour = enqueued.frozen.key, settings.delivery.local_time
        if enqueued.frozen.part:
            added = sum(queue.add_rows(key, clock.now(), hour, who=who) for who in _among(newcomer, enqueued.readers))
        else:  # the week itself: its readers with no part of their own, less those who read it all
            for who in _among(newcomer, week.read_it_all if week else ()):  # on the record: no later run counts them new
                queue.add_rows(key, clock.now(), hour, who=who, status="unneeded")
            held = week.in_flight if week else ()  # had it all, some of it still being sent: looked at again later
            added = queue.add_rows(key, clock.now(), hour, who=and_(newcomer, ~subscribers.c.id.in_(held)) if held else newcomer)
        out.append(replace(enqueued, added=added))
    return out


def _among(who: ColumnElement[bool], readers: tuple[int, ...]) -> Iterator[ColumnElement[bool]]:
    """`who` among these readers, 5,000 at a time (a statement binds a bounded number of values)."""
    for start in range(0, len(readers), 5000):
        yield and_(who, subscribers.c.id.in_(readers[start:start + 5000]))


def _freeze_week(settings: Settings, store: Store, tokens: Tokens, editions: Editions, clock: Clock, day: date,
                 part: str, edition: Edition | None, readers: tuple[int, ...]) -> Enqueued:
    """The week's edition (or one of its parts) as frozen already, else frozen now; the week itself
    rendered for every variant, and its page published in the archive."""
    found = editions.open_edition(settings.newsletter.list_id, day, WEEKLY, part)
    if found is not None:
        return Enqueued(found, False, 0, 0, None, readers=readers)
    assert edition is not None, "a week is made before it is frozen"
    made = draft(settings, DayEdition(settings, Gathered(()), edition, Timings(0, 0)), None, clock)
    found, _ = editions.freeze(settings.newsletter.list_id, edition, made.slot, made.date_header, clock.now(), part=part)
    fresh = found.slot == made.slot
    rendered = 0
    skipped: tuple[str, ...] = ()
    if fresh and not part:  # a part's variants are rendered as its few readers need them
        rendered, skipped = _render_variants(settings, store, tokens, editions, found, weekly_readers(settings, day))
        if settings.path is not None:
            write_page(settings, found.edition)
    return Enqueued(found, fresh, 0, rendered, None, tuple(skipped), readers=readers)


def _render_variants(settings: Settings, store: Store, tokens: Tokens, editions: Editions,
                     frozen: FrozenEdition, who: ColumnElement[bool]) -> tuple[int, tuple[str, ...]]:
    """Every variant the edition's active readers (`who`: its rhythm) chose, rendered once and kept
    with the edition."""
    composer = Composer(settings, frozen, tokens, editions)
    for locale, rubrics in store.variants(who):
        composer.template(locale, join_rubrics(rubrics))
    return composer.compiles, tuple(composer.skipped)
