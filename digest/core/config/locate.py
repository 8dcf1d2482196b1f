"""Which configuration a command reads, the options that override it, and the edition's day."""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from digest.core.config.loader import load
from digest.core.config.model import Settings, defaults
from digest.core.config.tables import check_locale, check_timezone
from digest.core.errors import ConfigError


def config_path(given: str | Path | None) -> Path | None:
    """The configuration every command reads: -c (or DIGEST_CONFIG), else ./digest.toml when there
    is one, else none (the built-in defaults)."""
    if given:
        return Path(given)
    return Path("digest.toml") if Path("digest.toml").is_file() else None


def find(given: str | Path | None) -> Settings:
    path = config_path(given)
    return load(path) if path else defaults()


def edition_day(value: str | None, settings: Settings, now: datetime | None = None) -> date:
    """--date: YYYY-MM-DD, 'today' or 'yesterday', in the newsroom's time zone (default today; `now`:
    the clock's time, when --now sets it)."""
    today = (now or datetime.now(UTC)).astimezone(ZoneInfo(settings.newsletter.timezone)).date()
    if value in (None, "", "today"):
        return today
    if value == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--date: {value!r} is not a date", "write it as YYYY-MM-DD, 'today' or 'yesterday'") from None


def with_overrides(settings: Settings, timezone: str | None = None, locale: str | None = None) -> Settings:
    """Apply command-line options (already read from DIGEST_* variables by Click) over the file."""
    news = settings.newsletter
    if timezone:
        news = replace(news, timezone=check_timezone(timezone))
    if locale:
        news = replace(news, locale=check_locale(locale, "--locale"))
    return replace(settings, newsletter=news)
