"""`digest gather` and `digest build`: the day's items, and the day's email written out.

The pipeline is imported when a command runs, not when this module loads: `digest gather --help`
reads no feed parser, no MJML and no database layer."""
from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from digest.cli.options import (
    CONTEXT,
    address,
    echo_error,
    edition_options,
    load_settings,
    need_config,
    source_specs,
)

if TYPE_CHECKING:
    from digest.core.config import Settings
    from digest.core.model import Ranked
    from digest.pipeline.edition import WrittenEdition
    from digest.pipeline.gather import Gathered


def report_sources(gathered: Gathered) -> None:
    for warning in gathered.warnings:
        echo_error("warning", warning)
    for error in gathered.errors:
        echo_error("error", str(error))


def report_skipped(skipped: list[str] | tuple[str, ...]) -> None:
    """Items the email could not show (already escaped for a terminal): the edition went without them."""
    for item in skipped:
        echo_error("error", f"{item} could not be rendered, left out")


@click.command(context_settings=CONTEXT, short_help="Print the day's items, ranked by rubric.")
@edition_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="A table for people, JSON for programs.")
def gather(config_path: str | None, day: str | None, timezone: str | None, sources: tuple[str, ...], fmt: str) -> None:
    """Read the sources and print the day's items, ranked, with their rubric and score.

    \b
    Example:
      digest gather --source page.txt --date 2026-11-29 --timezone Africa/Casablanca --format json
    """
    from digest.core import config  # noqa: PLC0415 (see the module's docstring)
    from digest.pipeline import edition as pipeline  # noqa: PLC0415
    from digest.pipeline.rank import ranked_items  # noqa: PLC0415

    settings = load_settings(config_path, timezone)
    prepared = pipeline.prepare(settings, config.edition_day(day, settings), source_specs(sources, settings))
    gathered, edition = prepared.gathered, prepared.edition
    report_sources(gathered)
    items = ranked_items(edition)
    leads = {id(r) for r in edition.leads}
    if fmt == "json":
        payload = {
            "date": edition.date.isoformat(),
            "timezone": settings.newsletter.timezone,
            "items": [_as_json(r, id(r) in leads) for r in items],
            "errors": [{"source": e.source, "message": str(e)} for e in gathered.errors],
        }
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        for r in items:
            when = r.item.published.strftime("%H:%M") if r.item.timed else "  -  "
            mark = "*" if id(r) in leads else " "
            title = r.item.title if len(r.item.title) <= 70 else r.item.title[:69] + "…"
            click.echo(f"{when} {mark}{r.item.kind:<7} {r.rubric:<14} {r.score:7.3f}  {title}  [{r.item.source}]")
        click.echo(f"{len(items)} items ({gathered.out_of_day} outside the day, {gathered.duplicates} duplicates merged)",
                   err=True)
    if gathered.errors:
        sys.exit(1)


def _as_json(ranked: Ranked, lead: bool) -> dict[str, Any]:
    item = ranked.item
    out: dict[str, Any] = {
        "id": item.id,
        "kind": item.kind,
        "title": item.title,
        "published": item.published.isoformat(),
        "rubric": ranked.rubric,
        "score": ranked.score,
        "source": item.source,
        "lang": item.lang,
        "url": item.url,
        "category": item.category,
        "summary": item.summary,
        "featured": item.featured,
        "lead": lead,
        "image": {"url": item.image.url, "alt": item.image.alt, "width": item.image.width,
                  "height": item.image.height} if item.image else None,
    }
    if item.kind == "article":
        out["body"] = list(item.body)
    return out


@click.command(context_settings=CONTEXT, short_help="Write the day's email: HTML, text and .eml.")
@edition_options
@click.option("--out", type=click.Path(file_okay=False), default="edition", show_default=True, envvar="DIGEST_OUT",
              help="Folder for digest.html, digest.txt and digest.eml. [env: DIGEST_OUT]")
@click.option("--locale", metavar="fr|en|ar", envvar="DIGEST_LOCALE",
              help="Language of the email, with a region if you like: ar-MA, en-GB (default: newsletter.locale). "
                   "[env: DIGEST_LOCALE]")
@click.option("--for", "to", metavar="EMAIL", help="The To: of digest.eml (default: the sender's address).")
@click.option("--check", is_flag=True,
              help="Also check the email (size, alt text, links, one h1, text size, contrast, unsubscribe link, "
                   "subject and preheader lengths); exit 1 when one fails.")
@click.option("--from-store", is_flag=True, help="Make the day's edition again from the store of items, not the sources.")
@click.option("--week", is_flag=True, help="Make the weekly edition of the week ending on --date, from the store of items.")
def build(config_path: str | None, day: str | None, timezone: str | None, sources: tuple[str, ...], out: str,
          locale: str | None, to: str | None, check: bool, from_store: bool, week: bool) -> None:
    """Make the day's edition and write it as HTML, plain text and a ready .eml.

    \b
    Examples:
      digest build -c examples/digest.toml --date 2026-11-29 --out edition/
      digest build -c examples/week/digest.toml --date 2026-11-29 --week --out week/
    """
    from digest.core import config  # noqa: PLC0415 (see the module's docstring)
    from digest.pipeline import edition as pipeline  # noqa: PLC0415
    from digest.web import checks  # noqa: PLC0415

    settings = load_settings(config_path, timezone, locale)
    recipient = address(to, "--for") if to else None
    day_ = config.edition_day(day, settings)
    if from_store or week:
        written = _from_store(settings, day_, Path(out), week, locale, recipient)
    else:
        written = pipeline.build(settings, day_, Path(out), sources=source_specs(sources, settings), to=recipient,
                                 report=report_sources)
    _print_build_report(written)
    report_skipped(written.rendered.skipped)
    failures = []
    if check:
        results = checks.run(written.rendered, settings.layout.budget_bytes)
        failures = checks.failed(results)
        click.echo("Checks:")
        for result in results:
            click.echo(f"  {result}")
        if failures:
            echo_error("error", f"{len(failures)} check(s) failed: {', '.join(c.name for c in failures)}")
    if written.day.gathered.errors or failures or written.rendered.skipped:
        sys.exit(1)


def _from_store(settings: Settings, day: date, out: Path, week: bool, locale: str | None,
                to: str | None) -> WrittenEdition:
    """The edition made again from the store of items (`digest send` keeps every day's items there).
    The database layer is imported here, not above: `digest gather --help` stays quick."""
    from digest.delivery.rhythms import from_store  # noqa: PLC0415
    from digest.pipeline import edition as pipeline  # noqa: PLC0415
    from subscribers.store import Store  # noqa: PLC0415

    need_config(settings, "build --from-store", "the store of items is in its database")
    store = Store.open(settings.database, create=False)
    try:
        prepared = from_store(settings, store, day, weekly=week)
    finally:
        store.close()
    pipeline.refuse_empty(prepared, "nothing is written (is the day gathered? digest items gather --date D)")
    return pipeline.write(prepared, out, locale, to)


def _print_build_report(written: WrittenEdition) -> None:
    from digest.pipeline.i18n import edition_date  # noqa: PLC0415

    day, rendered, settings = written.day, written.rendered, written.day.settings
    edition, gathered, locale = day.edition, day.gathered, rendered.variant.locale
    echo = click.echo
    echo(f"Edition of {edition_date(edition, locale, settings.theme)} ({settings.newsletter.timezone}), {locale}")
    echo(f"  subject   {rendered.subject}")
    echo(f"  items     {len(gathered.items)} in the day ({gathered.out_of_day} outside it, "
         f"{gathered.duplicates} duplicates merged)")
    for lead in edition.leads:
        echo(f"  lead      {lead.item.title}")
    for section in edition.sections:
        echo(f"  {settings.rubric(section.rubric).label_for(locale):<24}{len(section.items):>4}")
    if edition.more or rendered.moved_to_more:
        echo(f"  {'more on the web':<24}{len(edition.more) + rendered.moved_to_more:>4}")
    budget = settings.layout.budget_bytes
    echo(f"  HTML      {rendered.html_bytes:,} bytes of {budget:,} ({rendered.html_bytes / budget:.0%})")
    if rendered.dropped:
        echo(f"  not shown {rendered.dropped} items past layout.more_max (the email links to the archive for them)")
    timings = day.timings
    echo(f"  time      gather {timings.gather * 1000:.0f} ms, rank {timings.rank * 1000:.1f} ms, "
         f"render {timings.render * 1000:.0f} ms")
    echo("  wrote     " + ", ".join(str(f) for f in written.files))
    for warning in rendered.warnings:
        echo_error("warning", warning)
