"""All sources + the edition's date and time zone → the day's items, each story once."""
from __future__ import annotations

import asyncio
import concurrent.futures
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from digest.core.config import SourceSpec
from digest.core.errors import SourceError
from digest.core.model import Item
from digest.core.stories import canonical_url, same_story, word_set
from digest.core.text import title_key
from digest.pipeline import languages
from digest.pipeline.sources import Context, Fetched, fetch_all, read

T = TypeVar("T")


@dataclass(frozen=True)
class Gathered:
    items: tuple[Item, ...]
    errors: tuple[SourceError, ...] = ()
    warnings: tuple[str, ...] = ()
    out_of_day: int = 0
    duplicates: int = 0


def _richness(item: Item) -> tuple:
    """Which copy of a story to keep: an article over a brief, more text, a link, a category, the earliest source."""
    return (item.kind == "article", sum(map(len, item.body)), item.url is not None, item.category is not None, item.image is not None)


class _Stories:
    """Union-find over item indexes: each set is one story."""

    def __init__(self, count: int) -> None:
        self.parent = list(range(count))

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)

    def groups(self) -> list[list[int]]:
        """Each story's items, stories in the order of their first item."""
        found: dict[int, list[int]] = defaultdict(list)
        for i in range(len(self.parent)):
            found[self.find(i)].append(i)
        return [found[root] for root in sorted(found)]


def deduplicate(items: list[Item], similarity: float = 0.9) -> tuple[list[Item], int]:
    """Merge stories that share a canonical URL or have near-identical titles; keep the richest copy."""
    stories = _Stories(len(items))
    seen_url: dict[str, int] = {}
    # Titles that can be one story have equal word sets, so a dict finds the candidates: a 500-item
    # day costs 500 look-ups, not 125,000 comparisons.
    by_words: dict[frozenset[str], list[int]] = defaultdict(list)
    keys = [title_key(item.title) for item in items]
    for i, item in enumerate(items):
        if item.url:
            url = canonical_url(item.url)
            if url in seen_url:
                stories.union(seen_url[url], i)
            seen_url.setdefault(url, i)
        words = word_set(keys[i])
        same = next((j for j in by_words[words] if keys[j] == keys[i] or same_story(keys[j], keys[i], similarity)), None)
        if same is not None:
            stories.union(same, i)
        by_words[words].append(i)
    kept = [_richest(items, members) for members in stories.groups()]
    return kept, len(items) - len(kept)


def _richest(items: list[Item], members: list[int]) -> Item:
    """The copy of a story to keep, with a category from another copy if it has none."""
    item = items[max(members, key=lambda i: (_richness(items[i]), -i))]
    category = item.category or next((items[i].category for i in members if items[i].category), None)
    return item if category == item.category else replace(item, category=category)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also from code that already runs an event loop in this thread (a notebook, a
    test driving a browser): then the fetching runs in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def in_day(item: Item, day: date, tz: ZoneInfo) -> bool:
    return item.published.astimezone(tz).date() == day


def gather(specs: list[SourceSpec], day: date, tz: ZoneInfo, timeout: float = 10.0, similarity: float = 0.9,
           lang: str | None = None) -> Gathered:
    """Fetch every source concurrently, read each one, keep the day, merge duplicates. Each item
    carries its language: its source's `lang`, else detected (`lang`, the newsletter's, when unsure).

    A source that fails is reported in ``errors``; the others still make the edition.
    """
    warnings: list[str] = []
    errors: list[SourceError] = []
    todays: list[Item] = []
    outside = 0
    for fetched in _run(fetch_all(list(specs), timeout)):
        if isinstance(fetched, SourceError):
            errors.append(fetched)
            continue
        assert isinstance(fetched, Fetched)
        try:
            items = read(fetched, Context(fetched.spec, day, tz, warnings.append))
        except SourceError as exc:
            errors.append(exc)
            continue
        of_the_day = [item for item in items if in_day(item, day, tz)]
        outside += len(items) - len(of_the_day)
        todays.extend(languages.assign(of_the_day, fetched.spec.lang, lang))
    kept, duplicates = deduplicate(todays, similarity)
    return Gathered(tuple(kept), tuple(errors), tuple(warnings), outside, duplicates)
