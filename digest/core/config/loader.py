"""digest.toml → Settings: the file read, renamed keys carried over, each table given to its reader."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from digest.core.config import tables
from digest.core.config.model import Settings
from digest.core.config.table import TOP, Table
from digest.core.errors import ConfigError

# The tables (and top-level keys) digest.toml may hold: a table absent from a file is never read,
# so the unknown-key check learns the names from here.
TABLES = ("newsletter", "ranking", "layout", "rubrics", "sources", "subscribers", "delivery", "signup", "archive",
          "smtp", "dkim", "bounces", "fetch_timeout_seconds")

# Keys renamed since a release: the old name keeps working, with a one-line notice naming the new
# one, so that a newsroom's digest.toml survives an upgrade (Pelican's handle_deprecated_settings).
# "table.key" (or "key" at the top level) → its new name, in the same table.
RENAMED = {
    "fetch_timeout": "fetch_timeout_seconds",  # every duration says its unit, as deadline_seconds does
}


def load(path: str | Path) -> Settings:
    """Read digest.toml; relative paths in it are relative to its folder."""
    path = Path(path)
    file = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file", "pass -c with the path of your digest.toml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read it: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return parse(raw, file=file, folder=path.parent)


def carry_renamed(raw: dict[str, Any], file: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The raw tables with every old key moved to its new name, and a notice for each one moved."""
    notices = []
    for old, new in RENAMED.items():
        table_name, _, old_key = old.rpartition(".")
        table = raw.get(table_name) if table_name else raw
        if not isinstance(table, dict) or old_key not in table:
            continue
        where = f"{table_name}." if table_name else ""
        if new in table:
            raise ConfigError(f"{file}: {where}{old_key} and {where}{new} are the same setting",
                              f"keep only {where}{new}, its new name")
        table = dict(table)
        table[new] = table.pop(old_key)
        raw = {**raw, table_name: table} if table_name else table
        notices.append(f"{file}: {where}{old_key} is now called {where}{new}; the old name still works, "
                       "rename it when you can")
    return raw, tuple(notices)


def parse(raw: dict[str, Any], file: str = "digest.toml", folder: Path = Path(".")) -> Settings:
    raw, notices = carry_renamed(raw, file)
    top = Table(raw, TOP, file)

    def table(name: str) -> Table:
        return Table(top.get(name, dict, {}), name, file)

    newsletter, theme = tables.newsletter(table("newsletter"))
    rubrics, default_rubric = tables.rubrics(top.get("rubrics", list, []), file)
    database, secret_file = tables.subscribers(table("subscribers"), folder)
    settings = Settings(
        newsletter=newsletter,
        ranking=tables.ranking(table("ranking")),
        layout=tables.layout(table("layout")),
        rubrics=rubrics,
        default_rubric=default_rubric,
        sources=tables.sources(top.get("sources", list, []), file, folder, {r.key for r in rubrics}),
        theme=(folder / theme) if theme else None,
        database=database,
        secret_file=secret_file,
        smtp=tables.smtp(table("smtp"), folder) if "smtp" in raw else None,
        delivery=tables.delivery(table("delivery"), folder),
        signup=tables.signup(table("signup")),
        dkim=tables.dkim(table("dkim"), folder) if "dkim" in raw else None,
        bounces=tables.bounces(table("bounces"), folder) if "bounces" in raw else None,
        archive=tables.archive(table("archive"), folder),
        fetch_timeout_seconds=top.positive("fetch_timeout_seconds", float, Settings.fetch_timeout_seconds),
        path=Path(file),
        notices=notices,
    )
    top.done(known=TABLES)
    return settings
