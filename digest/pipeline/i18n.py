"""Message catalogs (gettext .po files under templates/locale/), locale-aware dates (babel), and the
Jinja environment every template is rendered in (email, text twin, preview, web pages)."""
from __future__ import annotations

import gettext
from datetime import date
from functools import cache, lru_cache
from importlib.resources import files
from io import BytesIO
from pathlib import Path
from typing import Any

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from markupsafe import Markup

from digest.pipeline.typography import language, phrase, typeset

DOMAIN = "digest"


@cache
def builtin_templates() -> Path:
    """The default theme: installed as the package ``digest.templates``, or ``templates/`` in a checkout."""
    try:
        return Path(str(files("digest.templates")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "templates"


@cache
def translations(locale: str, theme: Path | None = None) -> gettext.NullTranslations:
    """The catalog for a locale, read straight from its .po file (a theme's own catalog wins).
    Catalogs are per language: ar-MA reads ar's.

    English is the source language of the templates, so it needs no catalog.
    """
    locale = language(locale)
    for folder in (theme, builtin_templates()):
        if folder is None:
            continue
        po = folder / "locale" / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
        if po.is_file():
            with po.open("rb") as handle:
                catalog = read_po(handle, locale=locale, domain=DOMAIN)
            buffer = BytesIO()
            write_mo(buffer, catalog)
            buffer.seek(0)
            return Translations(buffer, domain=DOMAIN)
    return gettext.NullTranslations()


def environment(theme: Path | None, locale: str) -> jinja2.Environment:
    """Templates from the user's theme folder first, then the built-in theme (override one file, not
    all), with the locale's catalog installed. HTML and MJML templates are escaped, text ones not.
    Not cached here: each caller keeps its own, so a preview that saw a change can start afresh."""
    folders = [str(theme)] if theme else []
    folders.append(str(builtin_templates()))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(f) for f in folders]),
        autoescape=jinja2.select_autoescape(["html", "mjml.j2", "html.j2"], default_for_string=False),
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # The i18n extension adds this method to the environment when it loads; jinja2's types cannot say so.
    env.install_gettext_translations(translations(locale, theme), newstyle=True)  # type: ignore[attr-defined]
    for name in ("gettext", "_", "ngettext"):
        env.globals[name] = _typeset_strings(env.globals[name], locale)
    env.filters["typeset"] = lambda text: typeset(str(text), locale)  # for a text no view has set yet
    env.filters["wordwrap"] = _remembered_wordwrap(env.filters["wordwrap"])
    return env


def _remembered_wordwrap(wrap: Any) -> Any:
    """Jinja's wordwrap, each text wrapped once: every variant's text twin wraps the same excerpts."""
    remembered = lru_cache(maxsize=4096)(lambda env, *args: wrap(env, *args))

    @jinja2.pass_environment
    def wordwrap(env: jinja2.Environment, text: str, *args: Any) -> str:
        return remembered(env, str(text), *args)

    return wordwrap


def _typeset_strings(translate: Any, locale: str) -> Any:
    """The theme's strings, once their variables are in, set by the language's typography (French
    spacing, "au Quotidien"): the rules live in digest.pipeline.typography, not in each catalog."""

    @jinja2.pass_context
    def typeset(context: jinja2.runtime.Context, *args: Any, **variables: Any) -> str:
        text = translate(context, *args, **variables)
        shown = phrase(str(text), locale)
        return Markup(shown) if isinstance(text, Markup) else shown

    return typeset


def babel_locale(locale: str) -> str:
    """ar-MA as babel names it (ar_MA)."""
    return locale.replace("-", "_")


def long_date(day: date, locale: str) -> str:
    """"dimanche 29 novembre 2026", "Sunday, November 29, 2026", "الأحد، 29 نونبر 2026" (ar-MA)."""
    return format_date(day, format="full", locale=babel_locale(locale))


def short_date(day: date, locale: str) -> str:
    """Day and month as the locale orders them, as in the long date: "29 novembre", "November 29" (en),
    "29 November" (en-GB)."""
    return format_skeleton("MMMMd", day, locale=babel_locale(locale))


def edition_date(edition: Any, locale: str, theme: Path | None = None) -> str:
    """What a masthead says of an edition: its day written out, or its week ("La semaine du 23 au
    29 novembre", "The week of November 23 to 29")."""
    if getattr(edition, "first", None) is None:
        return long_date(edition.date, locale)
    return week_title(edition.first, edition.date, locale, theme)


def week_title(first: date, last: date, locale: str, theme: Path | None = None) -> str:
    """"La semaine du 23 au 29 novembre", "du 30 novembre au 6 décembre", "du 1er au 7 mars"; the
    month said once when both days share it, on the side the locale writes it."""
    start, end = short_date(first, locale), short_date(last, locale)
    if (first.year, first.month) == (last.year, last.month):
        if end[:1].isdigit():  # the day before the month (fr, ar): "du 23 au 29 novembre"
            start = "1er" if first.day == 1 and language(locale) == "fr" else str(first.day)
        else:  # the month first (en): "November 23 to 29"
            end = str(last.day)
    elif language(locale) == "fr" and first.day == 1:
        start = start.replace("1 ", "1er ", 1)
    pattern = translations(locale, theme).gettext("The week of %(first)s to %(last)s")
    return phrase(pattern % {"first": start, "last": end}, locale)


_RIGHT_TO_LEFT = frozenset({"ar", "he", "fa", "ur", "yi", "ps", "sd", "ug", "dv", "ckb"})


@cache
def direction(locale: str) -> str:
    """rtl or ltr; a language babel does not know (a detector's guess) by its script's usual direction."""
    try:
        return "rtl" if Locale.parse(babel_locale(locale)).character_order == "right-to-left" else "ltr"
    except (ValueError, UnknownLocaleError):
        return "rtl" if language(locale) in _RIGHT_TO_LEFT else "ltr"
