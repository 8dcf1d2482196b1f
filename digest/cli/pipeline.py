"""`digest gather` and `digest build`: the day's items, and the day's email written out."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from digest.cli.options import (
    CONTEXT,
    address,
    echo_error,
    edition_options,
    load_settings,
    source_specs,
)
from digest.core import config
from digest.core.model import Ranked
from digest.pipeline import edition as pipeline
from digest.pipeline.gather import Gathered
from digest.pipeline.i18n import long_date
from digest.pipeline.rank import ranked_items
from digest.web import checks


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
@click.option("--locale", metavar="|".join(config.LOCALES), envvar="DIGEST_LOCALE",
              help="Language of the email, with a region if you like: ar-MA, en-GB (default: newsletter.locale). "
                   "[env: DIGEST_LOCALE]")
@click.option("--for", "to", metavar="EMAIL", help="The To: of digest.eml (default: the sender's address).")
@click.option("--check", is_flag=True,
              help="Also check the email (size, alt text, links, one h1, text size, contrast, unsubscribe link, "
                   "subject and preheader lengths); exit 1 when one fails.")
def build(config_path: str | None, day: str | None, timezone: str | None, sources: tuple[str, ...], out: str,
          locale: str | None, to: str | None, check: bool) -> None:
    """Make the day's edition and write it as HTML, plain text and a ready .eml.

    \b
    Example:
      digest build -c examples/digest.toml --date 2026-11-29 --out edition/
    """
    settings = load_settings(config_path, timezone, locale)
    recipient = address(to, "--for") if to else None
    written = pipeline.build(settings, config.edition_day(day, settings), Path(out),
                             sources=source_specs(sources, settings), to=recipient, report=report_sources)
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


def _print_build_report(written: pipeline.WrittenEdition) -> None:
    day, rendered, settings = written.day, written.rendered, written.day.settings
    edition, gathered, locale = day.edition, day.gathered, rendered.variant.locale
    echo = click.echo
    echo(f"Edition of {long_date(edition.date, locale)} ({settings.newsletter.timezone}), {locale}")
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
