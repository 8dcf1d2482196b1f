"""Edition + variant → subject, preheader, email HTML and its plain-text twin.

Jinja2 renders MJML from the theme; mjml-python compiles it; premailer inlines the CSS (with no
network access); a second template writes the text twin. A size budget keeps the HTML under Gmail's
clipping point by moving the lowest-ranked items to a "more on the web" list.

A language is rendered and inlined once per edition; each variant (a choice of rubrics) is then
cut from its pieces in a fraction of a millisecond (pieces.py), the same bytes a full render gives.

Content never fills a reader's slot (views.py). An item that cannot be rendered at all is found,
left out and named in `Rendered.skipped`; only an edition that cannot render even with no items
blames the theme.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import mjml

from digest.core.config import Settings
from digest.core.errors import ThemeError
from digest.core.model import SLOT_TOKEN, Edition, Ranked, Rendered, Variant
from digest.core.text import one_line, printable
from digest.pipeline import i18n
from digest.pipeline.render import pieces
from digest.pipeline.render.fit import Made, fit, size
from digest.pipeline.render.inline import inline_css
from digest.pipeline.render.views import ItemView, SectionView, Views, cut_subject, https, one_spaced, truncate

__all__ = ["SLOT_TOKEN", "ItemView", "Renderer", "SectionView", "ThemeError", "https", "inline_css", "truncate"]


class Renderer:
    """Holds the Jinja environments (one per locale, with that locale's catalog) and, for the edition
    it last rendered, each locale's views and pieces; render() is pure.

    `slot` is what the unsubscribe and preferences links carry in place of a reader's token: the fixed
    display slot for build and preview, a random one per edition on the sending path (Sender). The
    caches belong to this renderer, hence to its slot."""

    def __init__(self, settings: Settings, slot: str = SLOT_TOKEN) -> None:
        self.settings = settings
        self.slot = slot
        self._slots = tuple(dict.fromkeys((slot, SLOT_TOKEN)))
        self._envs: dict[str, jinja2.Environment] = {}
        self._edition: Edition | None = None  # the edition the caches below were made for (held, so ids stay its own)
        self._views: dict[str, Views] = {}
        self._pieces: dict[str, pieces.Pieces | None] = {}
        logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)

    def env(self, locale: str) -> jinja2.Environment:
        if locale not in self._envs:
            self._envs[locale] = i18n.environment(self.settings.theme, locale)
        return self._envs[locale]

    def forget(self) -> None:
        """Drop the views and pieces made so far (a new edition does this by itself)."""
        self._edition, self._views, self._pieces = None, {}, {}

    def archive_url(self, edition: Edition) -> str:
        week = "week-" if edition.weekly else ""
        return f"{self.settings.newsletter.base_url}/archive/{week}{edition.date.isoformat()}.html"

    # -- views -----------------------------------------------------------------------------------
    def views(self, edition: Edition, locale: str) -> Views:
        if self._edition is not edition:
            self._edition, self._views, self._pieces = edition, {}, {}
        if locale not in self._views:
            self._views[locale] = Views(self.settings, locale, self._slots, self.archive_url(edition),
                                        ZoneInfo(edition.timezone))
        return self._views[locale]

    def _item(self, ranked: Ranked, locale: str, archive: str, tz: ZoneInfo) -> ItemView:
        """One item's view, made afresh (the cached ones live in views())."""
        return Views(self.settings, locale, self._slots, archive, tz).make(ranked)

    def _context(self, edition: Edition, variant: Variant, keep: int | None) -> dict[str, Any]:
        """The variant's whole context: the views, then the lines the theme writes from them."""
        env = self.env(variant.locale)
        context = self.views(edition, variant.locale).context(edition, variant, keep, self.slot)
        for key, name in (("preheader", "preheader"), ("contents_line", "contents"), ("more_line", "more")):
            context[key] = one_spaced(self._template(env, f"email/{name}.txt.j2", context))
        context["subject"] = cut_subject(self._template(env, "email/subject.txt.j2", context))
        return context

    # -- output ----------------------------------------------------------------------------------
    def _compile(self, context: dict[str, Any]) -> str:
        """The email's MJML, rendered and compiled (no CSS inlined yet)."""
        source = self._template(self.env(context["lang"]), "email/digest.mjml.j2", context)
        try:
            compiled = mjml.mjml2html(source, fonts={})  # fonts={}: no Google Fonts link, ever
        except ValueError as exc:  # mrml's parse errors (and text it cannot take, such as a lone surrogate)
            raise ThemeError(f"email/digest.mjml.j2 does not give valid MJML: {one_line(str(exc))[:300]}",
                             "check the theme's tags") from None
        if context["rtl"]:
            # mrml aligns every column left even when it runs right to left: mirror it.
            compiled = compiled.replace("text-align:left;direction:rtl", "text-align:right;direction:rtl")
        return compiled

    def _template(self, env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
        """Render one theme file; a broken template (a user's override, most likely) is named with its line."""
        try:
            return env.get_template(name).render(context)
        except jinja2.TemplateSyntaxError as exc:
            raise ThemeError(f"{exc.filename or name}, line {exc.lineno}: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise ThemeError(f"{name}: {exc}", "check the template against the built-in one") from None

    def _once(self, edition: Edition, variant: Variant, keep: int | None) -> Made:
        context = self._context(edition, variant, keep)
        return context, inline_css(self._compile(context))

    def _finish(self, edition: Edition, variant: Variant, make: Callable[[int | None], Made],
                skipped: list[Ranked]) -> Rendered:
        """The budget kept (the same search whichever way `make` works), the text twin written."""
        budget = self.settings.layout.budget_bytes
        context, html = made = make(None)
        warnings: list[str] = []
        if size(made) > budget:
            total = sum(len(s.items) for s in edition.sections if variant.rubrics is None or s.rubric in variant.rubrics)
            context, html = fit(make, total, budget, size(made), warnings)
        text = self._template(self.env(variant.locale), "email/digest.txt.j2", context).strip() + "\n"
        return Rendered(variant=variant, subject=context["subject"], preheader=context["preheader"], html=html,
                        text=text, moved_to_more=context["moved"], dropped=context["more_hidden"],
                        warnings=tuple(warnings), slot=self.slot, skipped=tuple(self.describe(r) for r in skipped))

    def render(self, edition: Edition, variant: Variant | None = None) -> Rendered:
        """The variant, cut from its language's pieces when the theme marks them, else rendered whole."""
        variant = variant or Variant(locale=self.settings.newsletter.locale)
        found = self._language(edition, variant.locale)
        if found is not None:
            try:
                return self._finish(edition, variant, lambda keep: self._cut(found, edition, variant, keep), [])
            except (pieces.Missing, ThemeError, UnicodeError):
                pass  # a piece this variant needs is not there (or an item will not render): in full
        return self.render_full(edition, variant)

    def render_full(self, edition: Edition, variant: Variant) -> Rendered:
        """The variant rendered whole: Jinja → MJML → premailer for it alone (what pieces must equal)."""
        skipped: list[Ranked] = []
        whole: Made | None = None
        try:
            whole = self._once(edition, variant, None)
        except (ThemeError, UnicodeError):
            edition, skipped = self._without_unrenderable(edition, variant)

        def make(keep: int | None) -> Made:
            return whole if keep is None and whole is not None else self._once(edition, variant, keep)

        return self._finish(edition, variant, make, skipped)

    # -- a language's pieces -------------------------------------------------------------------------
    def _language(self, edition: Edition, locale: str) -> pieces.Pieces | None:
        """The language's email in pieces, made once per edition (None: render each variant whole)."""
        self.views(edition, locale)  # resets the caches for a new edition
        if locale not in self._pieces:
            try:
                self._pieces[locale] = pieces.split(inline_css(self._compile(self._catalogue(edition, locale))))
            except (ThemeError, UnicodeError):
                self._pieces[locale] = None
        return self._pieces[locale]

    def _catalogue(self, edition: Edition, locale: str) -> dict[str, Any]:
        """Every item in its section and again in "more on the web", the per-variant texts as marks."""
        context = self._context(edition, Variant(locale), None)
        views = self.views(edition, locale)
        every = [*(r for s in edition.sections for r in s.items), *edition.more]
        context.update(
            marks=True, preheader=pieces.PREHEADER, more_hidden=1, more_line=pieces.MORE_LINE,
            contents_line=pieces.CONTENTS if context["sections"] else "",
            more=[v for v in map(views.item, every) if v.href],
        )
        return context

    def _cut(self, found: pieces.Pieces, edition: Edition, variant: Variant, keep: int | None) -> Made:
        context = self._context(edition, variant, keep)
        return context, found.assemble(context)

    # -- items that cannot be rendered -------------------------------------------------------------
    def _renders(self, edition: Edition, variant: Variant) -> bool:
        """Whether the edition's email and text compile (no CSS inlined: this only tells)."""
        try:
            context = self._context(edition, variant, None)
            self._compile(context)
            self._template(self.env(variant.locale), "email/digest.txt.j2", context)
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
