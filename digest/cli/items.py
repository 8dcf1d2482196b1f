"""`digest items`: the store of the newsroom's items (every story gathered, once), listed and searched;
a day gathered into it without sending; the old ones pruned."""
from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import click

from digest.cli.options import (
    CONTEXT,
    config_option,
    database_option,
    edition_options,
    load_settings,
    need_config,
    source_specs,
)
from digest.cli.pipeline import report_sources
from digest.core import config
from digest.core.clock import Clock
from digest.core.text import printable
from digest.delivery.items import ItemStore, StoredItem
from digest.delivery.rhythms import keep_day
from digest.pipeline import edition as pipeline
from subscribers.store import Store


@click.group(context_settings=CONTEXT, short_help="The store of items: list, search, gather a day, prune.")
def items() -> None:
    """Every item gathered is kept once per story (its canonical URL, else its source and title), a
    correction replacing it. The weekly edition, and any past edition, is made from this store."""


def _day(value: str | None, settings: config.Settings) -> date | None:
    return config.edition_day(value, settings) if value else None


@items.command("list", context_settings=CONTEXT)
@config_option
@database_option
@click.option("--search", "text", default="", metavar="WORDS", help="Only stories whose title or excerpt holds these words (case and accents aside).")
@click.option("--from", "first", metavar="DATE", help="From this day (YYYY-MM-DD, today, yesterday).")
@click.option("--to", "last", metavar="DATE", help="Up to this day.")
@click.option("--date", "day", metavar="DATE", help="One day only.")
@click.option("--rubric", metavar="KEY", help="Only this rubric.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True, help="At most this many, newest first.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_items(config_path: str | None, database: str | None, text: str, first: str | None, last: str | None,
               day: str | None, rubric: str | None, limit: int, fmt: str) -> None:
    """The stories in the store, newest first: their day, rubric, revision (2 and up: corrected) and title."""
    settings = load_settings(config_path, database=database)
    need_config(settings, "items", "the list id and the database come from it")
    store = Store.open(settings.database, create=False)
    found = ItemStore(store, settings.newsletter.list_id)
    start, end = (_day(day, settings),) * 2 if day else (_day(first, settings), _day(last, settings))
    rows = list(found.search(text, start, end, rubric, limit))
    total, oldest, newest = found.count()
    store.close()
    if fmt == "json":
        click.echo(json.dumps([_as_json(s) for s in rows], indent=2, ensure_ascii=False))
        return
    zone = ZoneInfo(settings.newsletter.timezone)
    for s in rows:
        published = s.item.published.astimezone(zone)
        when = published.strftime("%H:%M") if s.item.timed and published.date() == s.day else "     "
        mark = f" (corrected ×{s.revision - 1}, {published:%Y-%m-%d %H:%M})" if s.revision > 1 else ""
        click.echo(f"{s.day} {when}  {s.rubric:<14} {s.item.kind:<7} {printable(s.item.title)}{mark}")
    span = f", {oldest} to {newest}" if oldest else ""
    click.echo(f"{len(rows):,} shown of {total:,} stories in the store{span}", err=True)


def _as_json(s: StoredItem) -> dict[str, object]:
    return {"key": s.key, "day": s.day.isoformat(), "published": s.item.published.isoformat(), "kind": s.item.kind,
            "rubric": s.rubric, "score": s.score, "source": s.item.source, "url": s.item.url, "title": s.item.title,
            "excerpt": s.item.excerpt, "revision": s.revision, "updated_at": s.updated_at.isoformat()}


@items.command("gather", context_settings=CONTEXT)
@edition_options
@database_option
def gather_items(config_path: str | None, day: str | None, timezone: str | None, sources: tuple[str, ...],
                 database: str | None) -> None:
    """Gather the day's sources into the store without sending anything: a day the daily edition does
    not go out, or days to make a week from. Exit 1 when a source failed (the others are kept)."""
    settings = load_settings(config_path, timezone, database=database)
    need_config(settings, "items gather", "the list id and the database come from it")
    day_ = config.edition_day(day, settings)
    prepared = pipeline.prepare(settings, day_, source_specs(sources, settings))
    report_sources(prepared.gathered)
    store = Store.open(settings.database)
    _, kept = keep_day(settings, store, prepared, Clock().now())
    store.close()
    if kept is None:
        click.echo(f"{day_}: no items")
    else:
        click.echo(f"{day_}: {kept.new:,} new stories kept, {kept.corrected:,} corrected, {kept.unchanged:,} known already")
    sys.exit(1 if prepared.gathered.errors else 0)


@items.command("prune", context_settings=CONTEXT)
@config_option
@database_option
@click.option("--keep-days", type=click.IntRange(8, None), help="Keep this many days (default: [delivery] keep_items_days).")
def prune(config_path: str | None, database: str | None, keep_days: int | None) -> None:
    """Remove the stories older than the retention ([delivery] keep_items_days; every send does it too)."""
    settings = load_settings(config_path, database=database)
    need_config(settings, "items prune", "the list id and the database come from it")
    store = Store.open(settings.database, create=False)
    days = keep_days or settings.delivery.keep_items_days
    today = config.edition_day(None, settings)
    removed = ItemStore(store, settings.newsletter.list_id).prune(today, days)
    store.close()
    click.echo(f"{removed:,} stories removed (first kept before {today - timedelta(days=days)})")
