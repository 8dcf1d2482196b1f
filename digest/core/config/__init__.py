"""digest.toml (and DIGEST_* variables) → typed, frozen settings."""
from digest.core.config.settings import *  # noqa: F401,F403  (split below)
from digest.core.config.settings import (  # noqa: F401
    DEFAULT_RUBRIC,
    LOCALES,
    SOURCE_KINDS,
    _Table,
    check_locale,
    check_timezone,
    config_path,
    defaults,
    edition_day,
    find,
    load,
    parse,
    with_overrides,
)
