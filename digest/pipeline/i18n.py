"""Message catalogs (gettext .po files under templates/locale/), locale-aware dates (babel), and the
Jinja environment every template is rendered in (email, text twin, preview, web pages)."""
from __future__ import annotations

import gettext
from datetime import date
from functools import cache
from importlib.resources import files
from io import BytesIO
from pathlib import Path

import jinja2
from babel import Locale
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

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

    English is the source language of the templates, so it needs no catalog.
    """
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
    return env


def long_date(day: date, locale: str) -> str:
    """"dimanche 29 novembre 2026", "Sunday, November 29, 2026", "الأحد، 29 نوفمبر 2026"."""
    return format_date(day, format="full", locale=locale)


def short_date(day: date, locale: str) -> str:
    return format_date(day, format="d MMMM", locale=locale)


def direction(locale: str) -> str:
    return Locale.parse(locale).character_order == "right-to-left" and "rtl" or "ltr"
