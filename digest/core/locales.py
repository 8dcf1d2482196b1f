"""Languages and time zones digest knows: the checks digest.toml and the subscriber list share.

Each function answers with the canonical form or None; the caller raises its own error (a
ConfigError naming the file and key, an InvalidSubscriber naming the row), so the rule is written once.
"""
from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

# The languages the theme has catalogs for (templates/locale/<code>/); the first is the default.
LOCALES: tuple[str, ...] = ("fr", "en", "ar")


def language(raw: str | None) -> str | None:
    """fr, en or ar; a regional form such as fr-MA or FR_ma is read as its language."""
    code = (raw or "").strip().replace("_", "-").split("-", 1)[0].lower()
    return code if code in LOCALES else None


@cache
def _zones() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def zone(raw: str | None) -> str | None:
    """An IANA time zone name in its canonical spelling (africa/casablanca → Africa/Casablanca)."""
    return _zones().get((raw or "").strip().lower())
