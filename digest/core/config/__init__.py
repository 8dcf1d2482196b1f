"""digest.toml (and DIGEST_* variables) → typed, frozen settings; every error names file and key.

    model.py    the dataclasses, one per table, with their defaults (written once)
    table.py    one TOML table read strictly (types, unknown keys with the closest known names)
    tables.py   one reader per table
    loader.py   the file read, renamed keys carried over (with a notice), the tables assembled
    secrets.py  secrets from the environment or a file, never from digest.toml
    locate.py   which file a command reads, option overrides, the edition's day
"""
from digest.core.config.loader import RENAMED, load, parse
from digest.core.config.locate import config_path, edition_day, find, with_overrides
from digest.core.config.model import (
    DEFAULT_RUBRIC,
    Bounces,
    Delivery,
    Dkim,
    Layout,
    Newsletter,
    Ranking,
    Rubric,
    Settings,
    Signup,
    Smtp,
    SourceSpec,
    defaults,
)
from digest.core.config.tables import (
    SOURCE_KINDS,
    check_locale,
    check_timezone,
)
from digest.core.locales import LOCALES

__all__ = [
    "DEFAULT_RUBRIC", "LOCALES", "RENAMED", "SOURCE_KINDS", "Bounces", "Delivery", "Dkim", "Layout", "Newsletter",
    "Ranking", "Rubric", "Settings", "Signup", "Smtp", "SourceSpec", "check_locale", "check_timezone", "config_path",
    "defaults", "edition_day", "find", "load", "parse", "with_overrides",
]
