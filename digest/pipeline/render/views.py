"""What the email's templates see: each item as a view (text typeset in its own language, links
checked, its language marked when it is not the email's), and the context of one variant.

Content never fills a reader's slot: the views are the one place content enters the templates, and
no text or link there holds the slot (the renderer's own, or the fixed display slot).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from digest.core.config import Settings
from digest.core.model import Edition, Image, Ranked, Variant, order_key
from digest.core.text import one_line
from digest.pipeline import i18n
from digest.pipeline.colors import tint
from digest.pipeline.typography import language, typeset

DARK_CARD = "#22252c"  # the sections' background in dark mode (style.css)
LEAD_IMAGE_WIDTH = 600  # a lead picture spans the 600 px column
SUBJECT_MAX = 77  # characters: under 78, what most mail apps show of a subject on a desktop
_ASCII_SPACE = re.compile(r"[ \t\n\r\f\v]+")
# Words a cut subject must not end on ("… liens Maroco-Américains à…"): articles, prepositions, conjunctions.
_DANGLING = frozenset(
    ["à", "a", "au", "aux", "de", "des", "du", "d’", "d'", "la", "le", "les", "l’", "l'", "en", "et", "ou", "sur", "par", "pour", "avec", "dans", "un", "une", "ce", "cette", "ses", "son", "sa", "leurs", "the", "an", "of", "to", "in", "on", "and", "or", "for", "with", "at", "by", "from", "as", "its", "their", "في", "من", "على", "إلى", "عن", "مع", "و", "ثم", "أو"]
)


@dataclass(frozen=True)
class ItemView:
    id: str
    title: str
    href: str | None
    excerpt: str
    time: str
    kind: str
    rubric: str
    rubric_label: str
    color: str
    image: Image | None
    image_height: int | None = None  # pixels at the lead picture's 600 px, when the source gave its size
    lang: str | None = None  # set only when the item's language is not the email's
    dir: str | None = None


@dataclass(frozen=True)
class SectionView:
    key: str
    label: str
    color: str
    articles: tuple[ItemView, ...]
    briefs: tuple[ItemView, ...]


def truncate(text: str, limit: int) -> str:
    """Cut at a word boundary and mark the cut."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:.—–-\u00a0\u202f")
    return cut + "…"


def cut_subject(text: str, limit: int = SUBJECT_MAX) -> str:
    """A subject under `limit` characters, cut at a word that is not an article or a preposition."""
    text = _ASCII_SPACE.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    words = text[: limit - 1].split(" ")[:-1] or [text[: limit - 1]]
    while len(words) > 1 and (words[-1].casefold() in _DANGLING or len(words[-1]) <= 1):
        words.pop()
    return " ".join(words).rstrip(",;:.—–-·\u00a0\u202f ") + "…"


def one_spaced(text: str) -> str:
    """White space collapsed, the no-break spaces typography put in kept."""
    return _ASCII_SPACE.sub(" ", text).strip()


def https(url: str | None) -> str | None:
    """Links in the email are https only; a legacy http: link is upgraded, anything else dropped."""
    if not url:
        return None
    if url.startswith("http://"):
        return "https://" + url[len("http://"):]
    return url if url.startswith("https://") else None


class Views:
    """The views of one edition in one locale for one slot, each item's made once."""

    def __init__(self, settings: Settings, locale: str, slots: tuple[str, ...], archive: str, tz: ZoneInfo) -> None:
        self.settings, self.locale, self.slots, self.archive, self.tz = settings, locale, slots, archive, tz
        self.lang = language(locale)
        self._items: dict[int, ItemView] = {}
        self._constants: dict[tuple[Any, Any, str], dict[str, Any]] = {}
        self._order: dict[int, tuple[Any, ...]] = {}

    def order(self, ranked: Ranked) -> tuple[Any, ...]:
        """order_key, worked out once per item (it folds the title, the dearest part of a variant)."""
        key = id(ranked)
        if key not in self._order:
            self._order[key] = order_key(ranked)
        return self._order[key]

    def text(self, text: str) -> str:
        """Content text with every slot taken out. Replaced by a space, not by nothing: the space
        cannot be part of a slot, so no new slot forms where one was cut (`__DIGEST__DIGEST_TOKEN__TOKEN__`)."""
        if not any(slot in text for slot in self.slots):
            return text
        for slot in self.slots:
            text = text.replace(slot, " ")
        return one_line(text)

    def url(self, url: str | None) -> str | None:
        """A content link, or None when it holds a slot in any spelling a step on the way could undo
        (percent-encoding, letter case)."""
        if not url:
            return url
        spellings = (url, unquote(url))
        if any(slot.casefold() in s.casefold() for slot in self.slots for s in spellings):
            return None
        return url

    def item(self, ranked: Ranked) -> ItemView:
        key = id(ranked)
        if key not in self._items:
            self._items[key] = self.make(ranked)
        return self._items[key]

    def make(self, ranked: Ranked) -> ItemView:
        """The one place content enters the templates: every text cleaned of the slots and typeset in
        the item's language, every link that holds a slot dropped (the item is shown without it)."""
        item = ranked.item
        rubric = self.settings.rubric(ranked.rubric)
        lang = item.lang or self.lang
        title = typeset(self.text(item.title), lang)
        href = https(self.url(item.url))
        if href is None and item.kind == "article":
            href = f"{self.archive}#a-{item.id}"  # the web archive carries its full text
        image, height = item.image, None
        if image is not None:
            url = self.url(image.url)
            image = Image(url, typeset(self.text(image.alt), lang) or title, image.width, image.height) if url else None
            if image and image.width and image.height:
                height = round(LEAD_IMAGE_WIDTH * image.height / image.width)
        other = language(lang) != self.lang
        return ItemView(
            id=item.id, title=title, href=href,
            excerpt=truncate(typeset(self.text(item.excerpt), lang), self.settings.layout.excerpt_chars),
            time=item.published.astimezone(self.tz).strftime("%H:%M") if item.timed else "",
            kind=item.kind, rubric=ranked.rubric,
            rubric_label=typeset(self.text(rubric.label_for(self.locale)), self.lang),
            color=rubric.color, image=image, image_height=height,
            lang=lang if other else None, dir=i18n.direction(lang) if other else None,
        )

    def sections(self, edition: Edition, variant: Variant, kept: set[int]) -> list[SectionView]:
        out = []
        for section in edition.sections:
            if variant.rubrics is not None and section.rubric not in variant.rubrics:
                continue
            views = [self.item(r) for r in section.items if id(r) in kept]
            if views:
                label = typeset(self.settings.rubric(section.rubric).label_for(self.locale), self.lang)
                out.append(SectionView(key=section.rubric, label=label, color=section.color,
                                       articles=tuple(v for v in views if v.kind == "article"),
                                       briefs=tuple(v for v in views if v.kind == "brief")))
        return out

    def context(self, edition: Edition, variant: Variant, keep: int | None, slot: str) -> dict[str, Any]:
        """What the templates see for one variant, `keep` items (best first) in the sections, the
        rest moved to "more on the web" (None: all kept)."""
        chosen = [s for s in edition.sections if variant.rubrics is None or s.rubric in variant.rubrics]
        body = sorted((r for s in chosen for r in s.items), key=self.order)
        kept = {id(r) for r in (body if keep is None else body[:keep])}
        moved = [r for r in body if id(r) not in kept]
        more = sorted([r for r in edition.more if variant.rubrics is None or r.rubric in variant.rubrics] + moved,
                      key=self.order)
        more_views = [v for v in map(self.item, more) if v.href]
        limit = max(0, self.settings.layout.more_max)
        sections = self.sections(edition, variant, kept)
        leads = [self.item(r) for r in edition.leads]
        headlines = [v.title for v in leads[1:]] + [v.title for s in sections for v in (*s.articles, *s.briefs)]
        return {
            **self.constants(edition, slot),
            "leads": leads,
            "sections": sections,
            "more": more_views[:limit],
            "more_hidden": max(0, len(more_views) - limit),
            "moved": len(moved),
            "headlines": headlines,
            "item_count": len(leads) + sum(len(s.articles) + len(s.briefs) for s in sections),
            "marks": False,
        }

    def constants(self, edition: Edition, slot: str) -> dict[str, Any]:
        """The context every variant of this locale shares (made once)."""
        key = (edition.date, edition.first, slot)
        if key not in self._constants:
            self._constants[key] = self._make_constants(edition, slot)
        return self._constants[key]

    def _make_constants(self, edition: Edition, slot: str) -> dict[str, Any]:
        news = self.settings.newsletter
        rtl = i18n.direction(self.locale) == "rtl"
        return {
            "newsletter": news,
            "newsletter_name": typeset(news.name, self.lang),
            "postal_address": typeset(news.postal_address, self.lang),
            "lang": self.locale,
            "dir": "rtl" if rtl else "ltr",
            "rtl": rtl,
            "start": "right" if rtl else "left",
            "end": "left" if rtl else "right",
            "date": edition.date,
            "date_long": i18n.edition_date(edition, self.locale, self.settings.theme),
            "date_short": i18n.short_date(edition.date, self.locale),
            "weekly": edition.weekly,
            "tints": [(r.key, tint(r.color, DARK_CARD)) for r in self.settings.rubrics],
            "archive_url": self.archive,
            "unsubscribe_url": f"{news.base_url}/unsubscribe/{slot}",
            "preferences_url": f"{news.base_url}/preferences/{slot}",
        }
