"""Edition + variant → subject, preheader, email HTML and its plain-text twin.

Jinja2 renders MJML from the theme; mjml-python compiles it; premailer inlines the CSS (with no
network access); a second template writes the text twin. A size budget keeps the HTML under Gmail's
clipping point by moving the lowest-ranked items to a "more on the web" list.

Content never fills a reader's slot: the views are the one place content enters the templates, and
no text or link there holds the slot (the renderer's own, or the fixed display slot). An item that
cannot be rendered at all is found, left out and named in `Rendered.skipped`; only an edition that
cannot render even with no items blames the theme.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import jinja2
import mjml
from premailer import Premailer

from digest.core.config import Settings
from digest.core.errors import ThemeError
from digest.core.model import (
    SLOT_TOKEN,
    Edition,
    Image,
    Ranked,
    Rendered,
    Variant,
    order_key,
)
from digest.core.text import one_line, printable
from digest.pipeline import i18n

__all__ = ["SLOT_TOKEN", "Renderer", "ThemeError", "inline_css"]

_IMPORT = re.compile(r"@import\s+(url\()?[^;]*;", re.I)
_DOCTYPE = "<!doctype html>"


@dataclass(frozen=True)
class ItemView:
    id: str
    title: str
    href: str | None
    excerpt: str
    time: str
    kind: str
    rubric_label: str
    color: str
    image: Image | None


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
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:.—–-")
    return cut + "…"


def https(url: str | None) -> str | None:
    """Links in the email are https only; a legacy http: link is upgraded, anything else dropped."""
    if not url:
        return None
    if url.startswith("http://"):
        return "https://" + url[len("http://"):]
    return url if url.startswith("https://") else None


class Renderer:
    """Holds the Jinja environments (one per locale, with that locale's catalog); render() is pure.

    `slot` is what the unsubscribe and preferences links carry in place of a reader's token: the fixed
    display slot for build and preview, a random one per edition on the sending path (Sender)."""

    def __init__(self, settings: Settings, slot: str = SLOT_TOKEN) -> None:
        self.settings = settings
        self.slot = slot
        self._slots = tuple(dict.fromkeys((slot, SLOT_TOKEN)))
        self._envs: dict[str, jinja2.Environment] = {}
        logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)

    def env(self, locale: str) -> jinja2.Environment:
        if locale not in self._envs:
            self._envs[locale] = i18n.environment(self.settings.theme, locale)
        return self._envs[locale]

    # -- views -----------------------------------------------------------------------------------
    def archive_url(self, edition: Edition) -> str:
        return f"{self.settings.newsletter.base_url}/archive/{edition.date.isoformat()}.html"

    def _text(self, text: str) -> str:
        """Content text with every slot taken out. Replaced by a space, not by nothing: the space
        cannot be part of a slot, so no new slot forms where one was cut (`__DIGEST__DIGEST_TOKEN__TOKEN__`)."""
        if not any(slot in text for slot in self._slots):
            return text
        for slot in self._slots:
            text = text.replace(slot, " ")
        return one_line(text)

    def _url(self, url: str | None) -> str | None:
        """A content link, or None when it holds a slot in any spelling a step on the way could undo
        (percent-encoding, letter case)."""
        if not url:
            return url
        spellings = (url, unquote(url))
        if any(slot.casefold() in s.casefold() for slot in self._slots for s in spellings):
            return None
        return url

    def _item(self, ranked: Ranked, locale: str, archive: str, tz: ZoneInfo) -> ItemView:
        """The one place content enters the templates: every text cleaned of the slots, every link
        that holds one dropped (the item is shown without it)."""
        item = ranked.item
        rubric = self.settings.rubric(ranked.rubric)
        title = self._text(item.title)
        href = https(self._url(item.url))
        if href is None and item.kind == "article":
            href = f"{archive}#a-{item.id}"  # the web archive carries its full text
        image = item.image
        if image is not None:
            url = self._url(image.url)
            image = Image(url, self._text(image.alt) or title) if url else None
        return ItemView(
            id=item.id,
            title=title,
            href=href,
            excerpt=truncate(self._text(item.excerpt), self.settings.layout.excerpt_chars),
            time=item.published.astimezone(tz).strftime("%H:%M") if item.timed else "",
            kind=item.kind,
            rubric_label=self._text(rubric.label_for(locale)),
            color=rubric.color,
            image=image,
        )

    def _context(self, edition: Edition, variant: Variant, keep: int | None) -> dict[str, Any]:
        locale = variant.locale
        news = self.settings.newsletter
        archive = self.archive_url(edition)
        tz = ZoneInfo(edition.timezone)
        sections = [s for s in edition.sections if variant.rubrics is None or s.rubric in variant.rubrics]
        body = sorted((r for s in sections for r in s.items), key=order_key)
        kept = {id(r) for r in (body if keep is None else body[:keep])}
        moved = [r for r in body if id(r) not in kept]
        more = sorted([r for r in edition.more if variant.rubrics is None or r.rubric in variant.rubrics] + moved, key=order_key)
        more_views = [v for v in (self._item(r, locale, archive, tz) for r in more) if v.href]
        limit = max(0, self.settings.layout.more_max)
        section_views = []
        for section in sections:
            views = [self._item(r, locale, archive, tz) for r in section.items if id(r) in kept]
            if views:
                section_views.append(
                    SectionView(
                        key=section.rubric,
                        label=self.settings.rubric(section.rubric).label_for(locale),
                        color=section.color,
                        articles=tuple(v for v in views if v.kind == "article"),
                        briefs=tuple(v for v in views if v.kind == "brief"),
                    )
                )
        leads = [self._item(r, locale, archive, tz) for r in edition.leads]
        headlines = [v.title for v in leads[1:]] + [v.title for s in section_views for v in (*s.articles, *s.briefs)]
        base = news.base_url
        return {
            "newsletter": news,
            "lang": locale,
            "dir": i18n.direction(locale),
            "rtl": i18n.direction(locale) == "rtl",
            "start": "right" if i18n.direction(locale) == "rtl" else "left",
            "date": edition.date,
            "date_long": i18n.long_date(edition.date, locale),
            "date_short": i18n.short_date(edition.date, locale),
            "leads": leads,
            "sections": section_views,
            "more": more_views[:limit],
            "more_hidden": max(0, len(more_views) - limit),
            "moved": len(moved),
            "headlines": headlines,
            "archive_url": archive,
            "unsubscribe_url": f"{base}/unsubscribe/{self.slot}",
            "preferences_url": f"{base}/preferences/{self.slot}",
            "item_count": len(leads) + sum(len(s.articles) + len(s.briefs) for s in section_views),
        }

    # -- output ----------------------------------------------------------------------------------
    def _compile(self, env: jinja2.Environment, context: dict[str, Any]) -> str:
        """The email's MJML, rendered and compiled (no CSS inlined yet)."""
        source = self._template(env, "email/digest.mjml.j2", context)
        try:
            return mjml.mjml2html(source, fonts={})  # fonts={}: no Google Fonts link, ever
        except ValueError as exc:  # mrml's parse errors (and text it cannot take, such as a lone surrogate)
            raise ThemeError(f"email/digest.mjml.j2 does not give valid MJML: {one_line(str(exc))[:300]}",
                             "check the theme's tags") from None

    def _html(self, env: jinja2.Environment, context: dict[str, Any]) -> str:
        compiled = self._compile(env, context)
        if context["rtl"]:
            # mrml aligns every column left even when it runs right to left: mirror it.
            compiled = compiled.replace("text-align:left;direction:rtl", "text-align:right;direction:rtl")
        return inline_css(compiled)

    def _template(self, env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
        """Render one theme file; a broken template (a user's override, most likely) is named with its line."""
        try:
            return env.get_template(name).render(context)
        except jinja2.TemplateSyntaxError as exc:
            raise ThemeError(f"{exc.filename or name}, line {exc.lineno}: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise ThemeError(f"{name}: {exc}", "check the template against the built-in one") from None

    def _full_context(self, edition: Edition, variant: Variant, keep: int | None) -> dict[str, Any]:
        env = self.env(variant.locale)
        context = self._context(edition, variant, keep)
        context["preheader"] = " ".join(self._template(env, "email/preheader.txt.j2", context).split())
        context["subject"] = " ".join(self._template(env, "email/subject.txt.j2", context).split())
        return context

    def _once(self, edition: Edition, variant: Variant, keep: int | None) -> tuple[dict[str, Any], str]:
        context = self._full_context(edition, variant, keep)
        return context, self._html(self.env(variant.locale), context)

    # -- items that cannot be rendered -------------------------------------------------------------
    def _renders(self, edition: Edition, variant: Variant) -> bool:
        """Whether the edition's email and text compile (no CSS inlined: this only tells)."""
        env = self.env(variant.locale)
        try:
            context = self._full_context(edition, variant, None)
            self._compile(env, context)
            self._template(env, "email/digest.txt.j2", context)
        except (ThemeError, UnicodeError):
            return False
        return True

    def _culprits(self, edition: Edition, variant: Variant, suspects: list[Ranked]) -> list[Ranked]:
        """The items among `suspects` (which fail together) that fail: by halves, so k bad items among
        n cost about 2·k·log2(n) trial compiles. Items that fail only together are all given up."""
        if len(suspects) == 1:
            return suspects
        found: list[Ranked] = []
        for half in (suspects[: len(suspects) // 2], suspects[len(suspects) // 2:]):
            if not self._renders(only(edition, half), variant):
                found += self._culprits(edition, variant, half)
        return found or suspects

    def _without_unrenderable(self, edition: Edition, variant: Variant) -> tuple[Edition, list[Ranked]]:
        """The edition less the items that keep it from rendering. The theme is blamed (its ThemeError
        raised) only when the edition does not render even with no items."""
        self._once(only(edition, []), variant, None)  # raises when the theme itself is broken
        dropped: list[Ranked] = []
        remaining = edition
        while not self._renders(remaining, variant):
            bad = self._culprits(edition, variant, list(remaining.items))
            dropped += bad
            remaining = without(remaining, bad)
        return remaining, dropped

    def describe(self, ranked: Ranked) -> str:
        """An item as an editor finds it again, safe to print: `item "title" from source "name"`."""
        title = ranked.item.title if len(ranked.item.title) <= 80 else ranked.item.title[:79] + "…"
        return f'item "{printable(title)}" from source "{printable(ranked.item.source)}"'

    def _fit(
        self, edition: Edition, variant: Variant, budget: int, full_size: int, warnings: list[str]
    ) -> tuple[dict[str, Any], str]:
        """The most items (best first) whose email fits the budget.

        The size grows about linearly with the items kept, so each guess interpolates between the
        largest count known to fit and the smallest known not to, with a bisection every other step
        to bound the worst case: 3 to 5 renders instead of a dozen.
        """
        total = sum(len(s.items) for s in edition.sections if variant.rubrics is None or s.rubric in variant.rubrics)
        best = self._once(edition, variant, 0)
        lo, lo_size = 0, len(best[1].encode())
        hi, hi_size = total, full_size
        if lo_size > budget:
            warnings.append(f"the email is {lo_size:,} bytes even with every item moved out; budget {budget:,}")
            return best[0], best[1]
        step = 0
        while hi - lo > 1:
            step += 1
            if step % 2:
                guess = lo + int((budget - lo_size) * (hi - lo) / max(1, hi_size - lo_size))
            else:
                guess = (lo + hi) // 2
            guess = min(max(guess, lo + 1), hi - 1)
            trial = self._once(edition, variant, guess)
            size = len(trial[1].encode())
            if size <= budget:
                lo, lo_size, best = guess, size, trial
            else:
                hi, hi_size = guess, size
        warnings.append(f"{best[0]['moved']} items moved to 'more on the web' to stay under {budget:,} bytes")
        return best[0], best[1]

    def render(self, edition: Edition, variant: Variant | None = None) -> Rendered:
        variant = variant or Variant(locale=self.settings.newsletter.locale)
        budget = self.settings.layout.budget_bytes
        skipped: list[Ranked] = []
        try:
            context, html = self._once(edition, variant, None)
        except (ThemeError, UnicodeError):
            edition, skipped = self._without_unrenderable(edition, variant)
            context, html = self._once(edition, variant, None)
        warnings: list[str] = []
        if len(html.encode()) > budget:
            context, html = self._fit(edition, variant, budget, len(html.encode()), warnings)
        text = self._template(self.env(variant.locale), "email/digest.txt.j2", context).strip() + "\n"
        return Rendered(
            variant=variant,
            subject=context["subject"],
            preheader=context["preheader"],
            html=html,
            text=text,
            moved_to_more=context["moved"],
            dropped=context["more_hidden"],
            warnings=tuple(warnings),
            slot=self.slot,
            skipped=tuple(self.describe(r) for r in skipped),
        )


def only(edition: Edition, kept: list[Ranked]) -> Edition:
    """The edition with only these of its items, each where it was."""
    ids = {id(r) for r in kept}
    return _filtered(edition, lambda r: id(r) in ids)


def without(edition: Edition, left_out: list[Ranked]) -> Edition:
    ids = {id(r) for r in left_out}
    return _filtered(edition, lambda r: id(r) not in ids)


def _filtered(edition: Edition, keep: Callable[[Ranked], bool]) -> Edition:
    sections = tuple(replace(s, items=tuple(filter(keep, s.items))) for s in edition.sections)
    return replace(edition, leads=tuple(filter(keep, edition.leads)), more=tuple(filter(keep, edition.more)),
                   sections=tuple(s for s in sections if s.items))


def inline_css(html: str) -> str:
    """premailer with no network: @import rules are cut first (cssutils would fetch them on its own),
    `!important` is kept (MJML's responsive rules need it) and the doctype lxml drops is put back."""
    html = _IMPORT.sub("", html)
    inlined = Premailer(
        html,
        allow_network=False,
        strip_important=False,
        keep_style_tags=False,
        remove_classes=False,
        disable_validation=True,
        disable_link_rewrites=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform(pretty_print=False)
    if not inlined.lstrip().lower().startswith("<!doctype"):
        inlined = f"{_DOCTYPE}\n{inlined}"
    return inlined
