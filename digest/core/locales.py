"""Languages, time zones and hours of the day digest knows: the checks digest.toml and the subscriber
list share.

Each function answers with the canonical form or None; the caller raises its own error (a
ConfigError naming the file and key, an InvalidSubscriber naming the row), so the rule is written once.
"""
from __future__ import annotations

import re
from functools import cache
from zoneinfo import available_timezones

# The languages the theme has catalogs for (templates/locale/<code>/); the first is the default.
LOCALES: tuple[str, ...] = ("fr", "en", "ar")


def language(raw: str | None) -> str | None:
    """fr, en or ar; a regional form such as fr-MA or FR_ma is read as its language."""
    code = (raw or "").strip().replace("_", "-").split("-", 1)[0].lower()
    return code if code in LOCALES else None


def locale(raw: str | None) -> str | None:
    """A language digest has a catalog for, with or without a region, as BCP 47: fr, ar-MA, en-GB.

    The catalog stays the language's; the region gives its month names and formats (babel's CLDR
    data: ar-MA writes November "نونبر", en-GB "29 November"). A region babel does not know is refused."""
    text = (raw or "").strip().replace("_", "-")
    lang, _, region = text.partition("-")
    lang = lang.lower()
    if lang not in LOCALES:
        return None
    if not region:
        return lang
    region = region.upper()
    return f"{lang}-{region}" if _REGION.fullmatch(region) and _known(f"{lang}_{region}") else None


def for_reader(stored: str | None, newsletter: str) -> str:
    """The locale a reader's email is written in: theirs; a language without a region takes the
    newsletter's region when it is the newsletter's language (an "ar" reader of an ar-MA newsroom
    reads "نونبر"); one digest has no catalog for, the newsletter's."""
    found = locale(stored)
    if found is None:
        return newsletter
    return newsletter if "-" not in found and newsletter.split("-", 1)[0] == found else found


_REGION = re.compile(r"[A-Z]{2}|\d{3}")


@cache
def _known(name: str) -> bool:
    from babel import Locale, UnknownLocaleError  # noqa: PLC0415 — babel only for a regional locale (ar-MA)

    try:
        Locale.parse(name)
    except (UnknownLocaleError, ValueError):
        return False
    return True


@cache
def _zones() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def zone(raw: str | None) -> str | None:
    """An IANA time zone name in its canonical spelling (africa/casablanca → Africa/Casablanca)."""
    return _zones().get((raw or "").strip().lower())


_HOUR = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def hour(raw: str | None) -> str | None:
    """An hour of the day on a 24-hour clock as "HH:MM" (7:30 → 07:30): `[delivery] local_time`, and
    the hour a reader chose, both read where the reader lives."""
    match = _HOUR.fullmatch((raw or "").strip())
    return f"{int(match[1]):02d}:{match[2]}" if match else None
