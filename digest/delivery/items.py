"""The store of the newsroom's items: every item gathered, kept once per story, in the subscribers'
database. Past editions, and each week's, are made from it; what each edition's variants carried is
recorded beside it, so that no story reaches a reader twice.

A story's identity is its canonical URL (scheme, www., tracking parameters and fragment aside), else
its source and its folded title; an item of the past week whose title is near-identical to a new one
(the same words, as `gather` merges duplicates) is the same story too. A correction (the same story,
its title or text changed) replaces the stored copy: one row, its revision counted.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from digest.core import frozen
from digest.core.model import Edition, Item, Ranked, Variant
from digest.core.stories import canonical_url, same_story, word_set
from digest.core.text import fold, title_key
from digest.delivery.schema import edition_items, editions, items
from subscribers.store import Store, as_utc

WINDOW_DAYS = 7  # a new item is matched by title against the stories of this many past days


def identity(list_id: str, item: Item) -> str:
    """The story's key: its canonical URL, else its source and folded title (per newsletter)."""
    if item.url:
        basis = f"{list_id}\x1furl\x1f{canonical_url(item.url)}"
    else:
        basis = f"{list_id}\x1fsource\x1f{item.source}\x1f{title_key(item.title)}"
    return hashlib.sha1(basis.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Kept:
    """What keeping a day's items did: each item's story key, and the counts."""

    keys: dict[str, str]  # Item.id → story key
    new: int
    corrected: int
    unchanged: int


@dataclass(frozen=True)
class StoredItem:
    key: str
    day: date
    item: Item
    rubric: str
    score: float
    revision: int
    updated_at: datetime


def _same_text(a: str, b: str) -> bool:
    """The same story told the same way: a new time of publication alone is no correction."""
    left, right = frozen.item_loads(a), frozen.item_loads(b)
    return replace(left, published=right.published) == right


class ItemStore:
    """The items and edition_items tables of a store's database."""

    def __init__(self, store: Store, list_id: str) -> None:
        self.engine = store.engine
        self.list_id = list_id

    # -- keeping ----------------------------------------------------------------------------------
    def keep(self, ranked: Iterable[Ranked], day: date, now: datetime, write: bool = True) -> Kept:
        """Keep the day's items: a new story once, a known one replaced when its title or text
        changed (a correction). Returns each item's story key; `write` False changes nothing."""
        ranked = list(ranked)
        keys: dict[str, str] = {}
        counts = {"new": 0, "corrected": 0, "unchanged": 0}
        with self.engine.begin() as conn:
            recent = self._recent(conn, day)
            wanted = sorted({identity(self.list_id, r.item) for r in ranked})
            stored: dict[str, _Row] = {}
            for start in range(0, len(wanted), 500):
                stored.update((row.key, _Row(row.content, row.revision)) for row in conn.execute(
                    select(items.c.key, items.c.content, items.c.revision).where(items.c.key.in_(wanted[start:start + 500]))))
            for r in ranked:
                key = identity(self.list_id, r.item)
                near = None if key in stored else self._near(conn, recent, r.item, stored)
                keys[r.item.id] = key = near or key
                content = frozen.item_dumps(r.item)
                row = stored.get(key)
                if near and row is not None and frozen.item_loads(row.content).source != r.item.source:
                    counts["unchanged"] += 1  # the same story from another source: a repeat, the first copy stands
                    continue
                if row is None:
                    what, revision = "new", 1
                    recent[word_set(title_key(r.item.title))].append((key, title_key(r.item.title)))
                elif _same_text(row.content, content):
                    counts["unchanged"] += 1
                    continue
                else:
                    what, revision = "corrected", row.revision + 1
                counts[what] += 1
                stored[key] = _Row(content, revision)
                if write:
                    self._write(conn, key, r, day, content, revision, now)
        return Kept(keys, counts["new"], counts["corrected"], counts["unchanged"])

    def _write(self, conn: Connection, key: str, r: Ranked, day: date, content: str, revision: int, now: datetime) -> None:
        item = r.item
        values = dict(published=item.published, kind=item.kind, rubric=r.rubric, score=r.score, url=item.url,
                      title=item.title, folded=fold(f"{item.title} {item.excerpt}"), content=content,
                      revision=revision, updated_at=now)
        if revision == 1:
            conn.execute(insert(items).values(key=key, list_id=self.list_id, day=day, source=item.source[:300],
                                              kept_at=now, **values))
        else:
            conn.execute(update(items).where(items.c.key == key).values(**values))

    def _recent(self, conn: Connection, day: date) -> dict[frozenset[str], list[tuple[str, str]]]:
        """The past week's stories by the words of their titles: (key, folded title)."""
        rows = conn.execute(select(items.c.key, items.c.title).where(
            items.c.list_id == self.list_id, items.c.day >= day - timedelta(days=WINDOW_DAYS), items.c.day <= day))
        found: dict[frozenset[str], list[tuple[str, str]]] = defaultdict(list)
        for key, title in rows:
            folded = title_key(title)
            found[word_set(folded)].append((key, folded))
        return found

    @staticmethod
    def _near(conn: Connection, recent: dict[frozenset[str], list[tuple[str, str]]], item: Item,
              stored: dict[str, _Row]) -> str | None:
        """A story of the past week that this one repeats (the same words in its title, as `gather`
        merges the same story from two sources), loaded into `stored`."""
        mine = title_key(item.title)
        for key, theirs in recent.get(word_set(mine), ()):
            if theirs == mine or same_story(theirs, mine, 0.8):
                if key not in stored:
                    row = conn.execute(select(items.c.content, items.c.revision).where(items.c.key == key)).one()
                    stored[key] = _Row(row.content, row.revision)
                return key
        return None

    # -- what editions carried ----------------------------------------------------------------------
    def carried_before(self, day: date, keys: Iterable[str]) -> set[str]:
        """Which of these stories an edition of an earlier day already carried."""
        wanted = sorted(set(keys))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                found.update(conn.execute(
                    select(edition_items.c.item).join(editions, editions.c.key == edition_items.c.edition)
                    .where(editions.c.list_id == self.list_id, editions.c.day < day,
                           edition_items.c.item.in_(wanted[start:start + 500])).distinct()).scalars())
        return found

    # -- reading ------------------------------------------------------------------------------------
    def between(self, first: date, last: date) -> list[StoredItem]:
        """The stories first kept on the days from `first` to `last`."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(items).where(items.c.list_id == self.list_id, items.c.day >= first,
                                                    items.c.day <= last).order_by(items.c.day, items.c.key)).all()
        return [_stored(row) for row in rows]

    def search(self, text: str = "", first: date | None = None, last: date | None = None,
               rubric: str | None = None, limit: int = 100) -> Iterator[StoredItem]:
        """The stories whose title or excerpt holds `text` (case and accents aside), newest first."""
        query = select(items).where(items.c.list_id == self.list_id)
        for word in fold(text).split():
            escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(items.c.folded.like(f"%{escaped}%", escape="\\"))
        if first:
            query = query.where(items.c.day >= first)
        if last:
            query = query.where(items.c.day <= last)
        if rubric:
            query = query.where(items.c.rubric == rubric)
        query = query.order_by(items.c.published.desc(), items.c.key).limit(limit)
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                yield _stored(row)

    def count(self) -> tuple[int, date | None, date | None]:
        with self.engine.connect() as conn:
            row = conn.execute(select(func.count(), func.min(items.c.day), func.max(items.c.day))
                               .where(items.c.list_id == self.list_id)).one()
        return row[0], row[1], row[2]

    def prune(self, today: date, keep_days: int) -> int:
        """Forget the stories first kept more than `keep_days` days before `today`, and what the
        editions of those days carried."""
        cutoff = today - timedelta(days=keep_days)
        with self.engine.begin() as conn:
            old = select(editions.c.key).where(editions.c.list_id == self.list_id, editions.c.day < cutoff)
            conn.execute(delete(edition_items).where(edition_items.c.edition.in_(old)))
            result = conn.execute(delete(items).where(items.c.list_id == self.list_id, items.c.day < cutoff))
        return max(result.rowcount or 0, 0)


@dataclass(frozen=True)
class _Row:
    content: str
    revision: int


def _stored(row: Any) -> StoredItem:
    return StoredItem(key=row.key, day=row.day, item=frozen.item_loads(row.content), rubric=row.rubric,
                      score=row.score, revision=row.revision, updated_at=as_utc(row.updated_at))


def carried(edition: Edition, variant: Variant) -> list[str]:
    """The story keys a variant of an edition carries: the leads, and its rubrics' items (those in
    "more on the web" too: the reader saw their titles)."""
    chosen = variant.rubrics
    shown: list[Ranked] = list(edition.leads)
    for section in edition.sections:
        if chosen is None or section.rubric in chosen:
            shown.extend(section.items)
    shown.extend(r for r in edition.more if chosen is None or r.rubric in chosen)
    keys = dict(edition.stories)
    return [keys[r.item.id] for r in shown if r.item.id in keys]


def without(stories: Iterable[str], edition: Edition) -> list[Ranked]:
    """The edition's items less these stories."""
    gone = set(stories)
    keys = dict(edition.stories)
    return [r for r in edition.items if keys.get(r.item.id) not in gone]


