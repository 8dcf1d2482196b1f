"""What every command shares: the Click context, the options (-c, --date, --timezone, --source,
--database), reading the settings, and errors printed as one line with their exit code."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from digest.cli.base import CONTEXT, DigestGroup, UserError, echo_error
from digest.core.errors import ConfigError, InvalidSubscriber

if TYPE_CHECKING:  # imported when a command runs: `digest CMD --help` reads no configuration code
    from digest.core.config import Settings, SourceSpec

F = TypeVar("F", bound=Callable[..., Any])


def config_option(func: F) -> F:
    return click.option(
        "-c", "--config", "config_path", type=click.Path(dir_okay=False), envvar="DIGEST_CONFIG",
        help="digest.toml to read (default: ./digest.toml if present, else built-in defaults). [env: DIGEST_CONFIG]",
    )(func)


def database_option(func: F) -> F:
    return click.option(
        "--database", metavar="PATH_OR_URL", envvar="DIGEST_DATABASE",
        help="The subscribers' database: a file path or a URL such as postgresql+psycopg://… (default: "
             "subscribers.database in digest.toml, else ./digest.db). [env: DIGEST_DATABASE]",
    )(func)


def date_option(func: F) -> F:
    return click.option(
        "--date", "day", metavar="YYYY-MM-DD", envvar="DIGEST_DATE",
        help="The edition's date in the newsroom's time zone; also 'today', 'yesterday'. [env: DIGEST_DATE; default: today]",
    )(func)


def timezone_option(func: F) -> F:
    return click.option(
        "--timezone", metavar="ZONE", envvar="DIGEST_TIMEZONE",
        help="The newsroom's IANA time zone, e.g. Africa/Casablanca (overrides newsletter.timezone). [env: DIGEST_TIMEZONE]",
    )(func)


def source_option(func: F) -> F:
    return click.option(
        "--source", "sources", multiple=True, metavar="PATH_OR_URL",
        help="Read this source instead of the configured ones; repeat for several. The kind (page dump, feed, Markdown) is guessed.",
    )(func)


def now_option(func: F) -> F:
    return click.option(
        "--now", metavar="TIMESTAMP", envvar="DIGEST_NOW",
        help="Run as if it were this moment (ISO 8601 with its offset): for tests, and to replay a day. "
             "The clock runs on from there. [env: DIGEST_NOW]",
    )(func)


def outbox_option(func: F) -> F:
    return click.option(
        "--outbox", "outbox", type=click.Path(file_okay=False), envvar="DIGEST_OUTBOX",
        help="Write one .eml per message into this folder instead of using [smtp]. [env: DIGEST_OUTBOX]",
    )(func)


def edition_options(func: F) -> F:
    """-c, --date, --timezone and --source: the options of every command that makes an edition."""
    return config_option(date_option(timezone_option(source_option(func))))


def load_settings(config_path: str | None, timezone: str | None = None, locale: str | None = None,
                  database: str | None = None) -> Settings:
    """The configuration a command runs on, with its options over it; what the loader has to say (a
    renamed key) is printed once as a warning."""
    from digest.core import config  # noqa: PLC0415

    settings = config.with_overrides(config.find(config_path), timezone=timezone, locale=locale)
    for notice in settings.notices:
        echo_error("warning", notice)
    return replace(settings, database=database) if database else settings


def need_config(settings: Settings, command: str, why: str, hint: str = "") -> None:
    if settings.path is None:
        raise ConfigError(f"no digest.toml here and no -c: digest {command} needs one ({why})",
                          "pass -c path/to/digest.toml or set DIGEST_CONFIG" + (f"; {hint}" if hint else ""))


def source_specs(values: tuple[str, ...], settings: Settings) -> list[SourceSpec] | None:
    """--source replaces the configured sources; the name of each is what the user typed."""
    if not values:
        if not settings.sources:
            raise ConfigError("no sources", "pass --source PATH_OR_URL, or list [[sources]] in digest.toml (-c)")
        return None
    from digest.core.config import SourceSpec  # noqa: PLC0415

    specs = []
    for value in values:
        location = value if value.startswith(("http://", "https://")) else str(Path(value).expanduser())
        specs.append(SourceSpec(name=value, location=location))
    return specs


def address(value: str, option: str) -> str:
    """An address given on the command line (--for, --test-to), checked as a subscriber's would be."""
    from subscribers.validate import normalise_email  # noqa: PLC0415

    try:
        return normalise_email(value)
    except InvalidSubscriber as exc:
        raise ConfigError(f"{option} {value!r}: {exc.reason}") from None

__all__ = ["CONTEXT", "DigestGroup", "F", "UserError", "address", "config_option", "database_option", "date_option",
           "echo_error", "edition_options", "load_settings", "need_config", "now_option", "source_option", "source_specs",
           "timezone_option"]
