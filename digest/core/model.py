"""The data that crosses stages: plain frozen dataclasses, defined once."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import date as Day  # in Edition, `date` names a field
from typing import Any, Literal

from digest.core.text import title_key

Kind = Literal["brief", "article"]

# The slot that stands for a reader's token in a rendered email when nobody is sent it (build,
# preview): plain letters and underscores that survive Jinja, mrml, lxml and URL escaping. The
# sending path renders with a random slot of its own instead (personalize.new_slot), one no source
# can know.
SLOT_TOKEN = "__DIGEST_TOKEN__"


@dataclass(frozen=True)
class Image:
    url: str
    alt: str
    width: int | None = None  # the picture's own size in pixels, when the source says it
    height: int | None = None


@dataclass(frozen=True)
class Item:
    """One brief or article as a source gave it, before ranking."""

    kind: Kind
    title: str
    published: datetime  # always timezone-aware
    source: str  # the source's name
    url: str | None = None
    body: tuple[str, ...] = ()  # paragraphs, plain text
    summary: str = ""
    category: str | None = None  # what the source says the rubric is
    image: Image | None = None
    featured: bool = False
    pin: int = 0  # editor's pin: higher goes first
    timed: bool = True  # False when the source gave no time of day (page-dump articles)
    author: str | None = None
    lang: str | None = None  # the language it is written in (its source's `lang`, or detected)

    @property
    def excerpt(self) -> str:
        return self.summary or (self.body[0] if self.body else "")

    @property
    def id(self) -> str:
        """Stable across runs: the same story from the same source has the same id."""
        key = "\x1f".join((self.source, self.url or "", self.title, self.published.isoformat()))
        # surrogatepass: an id for any text, even one a hand-made item carries unchecked
        return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:12]


@dataclass(frozen=True)
class Ranked:
    """An item with the rubric and score that ranking gave it."""

    item: Item
    rubric: str  # rubric key
    score: float

    def __getattr__(self, name: str) -> Any:  # a ranked item reads like its item (templates use this)
        if name == "item" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.item, name)


@dataclass(frozen=True)
class Section:
    rubric: str  # rubric key
    label: str
    color: str
    items: tuple[Ranked, ...]


@dataclass(frozen=True)
class Edition:
    """One day, ranked: the lead stories, the sections in the newsroom's order, the overflow."""

    date: date
    timezone: str
    leads: tuple[Ranked, ...]
    sections: tuple[Section, ...]
    more: tuple[Ranked, ...] = ()  # over a rubric's cap or the size budget: "more on the web"
    first: Day | None = None  # a weekly edition's first day (`date` is its last); None: one day
    # Each item's story in the store of items (Item.id → story key): what its variants carried.
    stories: tuple[tuple[str, str], ...] = ()

    @property
    def weekly(self) -> bool:
        return self.first is not None

    @property
    def items(self) -> tuple[Ranked, ...]:
        """Every item in reading order."""
        out = list(self.leads)
        for section in self.sections:
            out.extend(section.items)
        out.extend(self.more)
        return tuple(out)


@dataclass(frozen=True)
class Variant:
    """What one group of subscribers receives: a locale and a choice of rubrics (None: all)."""

    locale: str = "fr"
    rubrics: frozenset[str] | None = None


@dataclass(frozen=True)
class Rendered:
    """A variant rendered once; per-recipient slots are still in it."""

    variant: Variant
    subject: str
    preheader: str
    html: str
    text: str
    moved_to_more: int = 0  # items the size budget moved to the "more on the web" list
    dropped: int = 0  # items that did not fit at all
    warnings: tuple[str, ...] = field(default=())
    slot: str = SLOT_TOKEN  # what stands for the reader's token in html and text
    skipped: tuple[str, ...] = field(default=())  # items that could not be rendered, left out (printable)

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))


def order_key(ranked: Ranked) -> tuple[int, float, float, str, str, str]:
    """Reading order: pins first, then score; ties broken by time (newest first), then title: same
    input, same order."""
    item = ranked.item
    return (-item.pin, -ranked.score, -item.published.timestamp(), title_key(item.title), item.title, item.source)
