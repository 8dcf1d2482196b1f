"""Each reader's rhythm: the daily edition for daily readers, and on each weekday the week's edition,
made from the store of items, for the weekly readers of that day. No story reaches a reader twice:

- the day's items are kept in the store, and a story an earlier edition carried already (a correction
  published again, the same story from another source the next day) leaves the day's edition;
- the week's edition is the best of the seven days' stories; a reader who had some of them already (they
  switched from daily in mid-week) gets a part of it made without those.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, false, or_, select

from digest.core.config import Settings
from digest.core.model import Edition, Item
from digest.delivery.compose import reader_variant
from digest.delivery.editions import WEEKLY, variant_key
from digest.delivery.items import ItemStore, Kept
from digest.delivery.queue import Backlog, Queue
from digest.delivery.schema import deliveries, edition_items, editions, items
from digest.pipeline.edition import DayEdition, Timings
from digest.pipeline.gather import Gathered
from digest.pipeline.rank import rank
from subscribers.schema import subscribers
from subscribers.store import Store

DAILY_READERS: ColumnElement[bool] = subscribers.c.cadence != "weekly"


def weekly_readers(settings: Settings, day: date) -> ColumnElement[bool]:
    """The weekly readers whose day `day` is: their own weekday, else the newsroom's."""
    dow = day.weekday()
    mine = subscribers.c.weekday == dow
    if settings.delivery.weekly_day == dow:
        mine = or_(mine, subscribers.c.weekday.is_(None))
    return and_(subscribers.c.cadence == "weekly", mine)


def week_of(day: date) -> date:
    """The first day of the week that ends on `day`."""
    return day - timedelta(days=6)


# -- the day -----------------------------------------------------------------------------------------
def keep_day(settings: Settings, store: Store, prepared: DayEdition, now: datetime,
             write: bool = True) -> tuple[DayEdition, Kept | None]:
    """The day's items kept in the store (unless `write` is False: a dry run), and the day's edition
    without the stories an earlier edition carried, each item named by its story."""
    edition = prepared.edition
    if not edition.items:
        return prepared, None
    found = ItemStore(store, settings.newsletter.list_id)
    kept = found.keep(edition.items, edition.date, now, write=write)
    old = found.carried_before(edition.date, kept.keys.values())
    if old:
        fresh = [r.item for r in edition.items if kept.keys[r.item.id] not in old]
        edition = rank(fresh, settings, edition.date, edition.timezone)
    edition = replace(edition, stories=tuple((r.item.id, kept.keys[r.item.id]) for r in edition.items))
    if write:
        found.prune(edition.date, settings.delivery.keep_items_days)
    return replace(prepared, edition=edition), kept


def from_store(settings: Settings, store: Store, day: date, weekly: bool = False) -> DayEdition:
    """A past day's edition (or the week's ending on `day`) made again from the store, without the
    sources: the stories as last corrected, ranked as they would be now."""
    first = week_of(day) if weekly else None
    stored = ItemStore(store, settings.newsletter.list_id).between(first or day, day)
    found = [s.item for s in stored]
    edition = _ranked(settings, found, {s.item.id: s.key for s in stored}, first, day)
    return DayEdition(settings, Gathered(tuple(found)), edition, Timings(0, 0))


# -- the week ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Week:
    """The week's edition, and its parts: (part name, edition, the readers it is for)."""

    edition: Edition
    parts: tuple[tuple[str, Edition, tuple[int, ...]], ...]
    stories: int
    read_it_all: tuple[int, ...] = ()  # readers who had every story of the week: no email this week
    # … of whom some story is still being sent (leased): none this run, and no row, for a later run
    # may find that story failed and make them a part
    in_flight: tuple[int, ...] = ()


def has_weekly_readers(settings: Settings, store: Store, day: date) -> bool:
    with store.engine.connect() as conn:
        return conn.execute(select(subscribers.c.id).where(subscribers.c.status == "active",
                                                          weekly_readers(settings, day)).limit(1)).first() is not None


def make_week(settings: Settings, store: Store, day: date, this_week: list[str] | None = None) -> Week | None:
    """The week ending on `day` from the store, and a part for each set of its stories some of the
    day's weekly readers had already; None when the store holds nothing of the week."""
    first = week_of(day)
    stored = ItemStore(store, settings.newsletter.list_id).between(first, day)
    if not stored:
        return None
    by_item = {s.item.id: s.key for s in stored}
    week_items = [s.item for s in stored]
    edition = _ranked(settings, week_items, by_item, first, day)
    had, in_flight = _had_already(settings, store, day, first, this_week or [])
    groups: dict[frozenset[str], list[int]] = defaultdict(list)
    for subscriber_id, seen in had.items():
        groups[frozenset(seen)].append(subscriber_id)
    parts = []
    read_it_all: list[int] = []
    held: list[int] = []
    for keys, readers in sorted(groups.items(), key=lambda kv: min(kv[1])):
        name = hashlib.sha1(",".join(sorted(keys)).encode()).hexdigest()[:6]
        rest = [item for item in week_items if by_item[item.id] not in keys]
        if rest:
            parts.append((name, _ranked(settings, rest, by_item, first, day), tuple(sorted(readers))))
        else:
            read_it_all.extend(r for r in readers if r not in in_flight)
            held.extend(r for r in readers if r in in_flight)
    return Week(edition, tuple(parts), len(stored), tuple(sorted(read_it_all)), tuple(sorted(held)))


def _ranked(settings: Settings, week_items: list[Item], by_item: dict[str, str], first: date | None,
                 day: date) -> Edition:
    edition = rank(week_items, settings, day, settings.newsletter.timezone, first=first)
    return replace(edition, stories=tuple((r.item.id, by_item[r.item.id]) for r in edition.items))


def _had_already(settings: Settings, store: Store, day: date, first: date,
                 this_week: list[str]) -> tuple[dict[int, set[str]], set[int]]:
    """The week's stories each of the day's weekly readers received already (in a daily edition, or a
    weekly one of another day), by the variant their row was made for; and the readers of whom some
    of those are still being sent (leased)."""
    d, carried, stored = deliveries.c, edition_items.c, items.c
    query = (
        select(d.subscriber_id, d.choice, carried.variant, carried.item, d.status)
        .join(edition_items, carried.edition == d.edition)
        .join(items, stored.key == carried.item)
        .join(subscribers, subscribers.c.id == d.subscriber_id)
        .join(editions, editions.c.key == d.edition)
        .where(subscribers.c.status == "active", weekly_readers(settings, day), d.status.in_(("sent", "leased")),
               stored.list_id == settings.newsletter.list_id, stored.day >= first, stored.day <= day,
               ~and_(editions.c.rhythm == WEEKLY, editions.c.day == day))
    )
    if this_week:  # readers with a row of this week's edition already have theirs
        query = query.where(~_has_row(this_week))
    known = frozenset(r.key for r in settings.rubrics)
    variants: dict[str, str] = {}
    had: dict[int, set[str]] = defaultdict(set)
    in_flight: set[int] = set()
    with store.engine.connect() as conn:
        for subscriber_id, choice, variant, item, status in conn.execute(query):
            if choice is not None:
                if choice not in variants:
                    locale, _, rubrics = choice.partition("|")
                    variants[choice] = variant_key(reader_variant(settings, locale, rubrics, known))
                if variants[choice] != variant:
                    continue
            had[subscriber_id].add(item)
            if status == "leased":
                in_flight.add(subscriber_id)
    return had, in_flight


def newcomers(settings: Settings, day: date, week: list[str]) -> ColumnElement[bool]:
    """The day's weekly readers with no row of the week's edition nor of any of its parts."""
    return and_(weekly_readers(settings, day), ~_has_row(week))


def _has_row(editions_: list[str]) -> ColumnElement[bool]:
    """The reader has a row of one of these editions (an alias of the ledger: a query over the ledger
    itself may use it)."""
    row = deliveries.alias("has_row")
    return select(row.c.subscriber_id).where(row.c.subscriber_id == subscribers.c.id,
                                             row.c.edition.in_(editions_)).exists()


def backlog(queue: Queue, settings: Settings, day: date, daily: str | None, week: list[str]) -> Backlog:
    """Where the day's edition and the week's (with its parts) stand, together."""
    found = queue.backlog(daily, who=DAILY_READERS) if daily else Backlog(0, 0, 0, 0, 0, None)
    for i, key in enumerate(week):
        # The week's new readers are counted once, whichever of its editions they will get.
        found = found + queue.backlog(key, who=newcomers(settings, day, week) if i == 0 else false())
    return found
