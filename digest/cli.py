"""The `digest` command line: parses options, calls the pipeline, prints. No logic of its own."""
from __future__ import annotations

import json
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from . import __version__, edition as pipeline, settings as config
from .errors import ConfigError, DigestError
from .gather import Gathered
from .rank import ranked_items
from .settings import Settings, SourceSpec

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _err(kind: str, text: str) -> None:
    click.echo(f"digest: {kind}: {text}", err=True)


def load_settings(config_path: str | None, timezone: str | None, locale: str | None = None) -> Settings:
    if config_path:
        settings = config.load(config_path)
    elif Path("digest.toml").is_file():
        settings = config.load("digest.toml")
    else:
        settings = config.defaults()
    return config.with_overrides(settings, timezone=timezone, locale=locale)


def parse_day(value: str | None, settings: Settings) -> date:
    today = datetime.now(ZoneInfo(settings.newsletter.timezone)).date()
    if value in (None, "", "today"):
        return today
    if value == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--date: {value!r} is not a date", "write it as YYYY-MM-DD, 'today' or 'yesterday'") from None


def source_specs(values: tuple[str, ...], settings: Settings) -> list[SourceSpec] | None:
    """--source replaces the configured sources; the name of each is what the user typed."""
    if not values:
        if not settings.sources:
            raise ConfigError("no sources", "pass --source PATH_OR_URL, or list [[sources]] in digest.toml (-c)")
        return None
    specs = []
    for value in values:
        location = value if value.startswith(("http://", "https://")) else str(Path(value).expanduser())
        specs.append(SourceSpec(name=value, location=location))
    return specs


def report_sources(gathered: Gathered) -> None:
    for warning in gathered.warnings:
        _err("warning", warning)
    for error in gathered.errors:
        _err("error", str(error))


def common(func):
    """The options `gather` and `build` share, each also read from a DIGEST_* variable."""
    options = [
        click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), envvar="DIGEST_CONFIG",
                     help="digest.toml to read (default: ./digest.toml if present, else built-in defaults). [env: DIGEST_CONFIG]"),
        click.option("--date", "day", metavar="YYYY-MM-DD", envvar="DIGEST_DATE",
                     help="The edition's date in the newsroom's time zone; also 'today', 'yesterday'. [env: DIGEST_DATE; default: today]"),
        click.option("--timezone", metavar="ZONE", envvar="DIGEST_TIMEZONE",
                     help="The newsroom's IANA time zone, e.g. Africa/Casablanca (overrides newsletter.timezone). [env: DIGEST_TIMEZONE]"),
        click.option("--source", "sources", multiple=True, metavar="PATH_OR_URL",
                     help="Read this source instead of the configured ones; repeat for several. The kind (page dump, feed, Markdown) is guessed."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="digest")
def cli() -> None:
    """digest: turn a newsroom's day into a ranked email digest.

    \b
    Exit codes: 0 ok, 1 some sources failed (the rest made the edition),
                2 usage or configuration error.
    """


@cli.command(context_settings=CONTEXT, short_help="Print the day's items, ranked by rubric.")
@common
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="A table for people, JSON for programs.")
def gather(config_path, day, timezone, sources, fmt) -> None:
    """Read the sources and print the day's items, ranked, with their rubric and score.

    \b
    Example:
      digest gather --source page.txt --date 2026-11-29 --timezone Africa/Casablanca --format json
    """
    settings = load_settings(config_path, timezone)
    made = pipeline.make(settings, parse_day(day, settings), source_specs(sources, settings))
    report_sources(made.gathered)
    items = ranked_items(made.edition)
    leads = {id(r) for r in made.edition.leads}
    if fmt == "json":
        payload = {
            "date": made.edition.date.isoformat(),
            "timezone": settings.newsletter.timezone,
            "items": [_as_json(r, id(r) in leads) for r in items],
            "errors": [{"source": e.source, "message": str(e)} for e in made.gathered.errors],
        }
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        for r in items:
            when = r.item.published.strftime("%H:%M") if r.item.timed else "  -  "
            mark = "*" if id(r) in leads else " "
            title = r.item.title if len(r.item.title) <= 70 else r.item.title[:69] + "…"
            click.echo(f"{when} {mark}{r.item.kind:<7} {r.rubric:<14} {r.score:7.3f}  {title}  [{r.item.source}]")
        click.echo(f"{len(items)} items ({made.gathered.out_of_day} outside the day, {made.gathered.duplicates} duplicates merged)", err=True)
    if made.gathered.errors:
        sys.exit(1)


def _as_json(ranked, lead: bool) -> dict:
    item = ranked.item
    out = {
        "id": item.id,
        "kind": item.kind,
        "title": item.title,
        "published": item.published.isoformat(),
        "rubric": ranked.rubric,
        "score": ranked.score,
        "source": item.source,
        "url": item.url,
        "category": item.category,
        "summary": item.summary,
        "featured": item.featured,
        "lead": lead,
        "image": {"url": item.image.url, "alt": item.image.alt} if item.image else None,
    }
    if item.kind == "article":
        out["body"] = list(item.body)
    return out


@cli.command(context_settings=CONTEXT, short_help="Write the day's email: HTML, text and .eml.")
@common
@click.option("--out", type=click.Path(file_okay=False), default="edition", show_default=True, envvar="DIGEST_OUT",
              help="Folder for digest.html, digest.txt and digest.eml. [env: DIGEST_OUT]")
@click.option("--locale", type=click.Choice(config.LOCALES), envvar="DIGEST_LOCALE",
              help="Language of the email (default: newsletter.locale). [env: DIGEST_LOCALE]")
@click.option("--for", "to", metavar="EMAIL", help="The To: of digest.eml (default: the sender's address).")
def build(config_path, day, timezone, sources, out, locale, to) -> None:
    """Make the day's edition and write it as HTML, plain text and a ready .eml.

    \b
    Example:
      digest build -c examples/digest.toml --date 2026-11-29 --out edition/
    """
    settings = load_settings(config_path, timezone, locale)
    made = pipeline.make(settings, parse_day(day, settings), source_specs(sources, settings))
    report_sources(made.gathered)
    built = pipeline.build(made, Path(out), to=to)
    _print_build_report(built)
    if made.gathered.errors:
        sys.exit(1)


def _print_build_report(built: pipeline.Built) -> None:
    made, rendered, settings = built.made, built.rendered, built.made.settings
    edition, gathered = made.edition, made.gathered
    from .i18n import long_date

    echo = click.echo
    echo(f"Edition of {long_date(edition.date, rendered.variant.locale)} ({settings.newsletter.timezone}), {rendered.variant.locale}")
    echo(f"  subject   {rendered.subject}")
    echo(f"  items     {len(gathered.items)} in the day ({gathered.out_of_day} outside it, {gathered.duplicates} duplicates merged)")
    for lead in edition.leads:
        echo(f"  lead      {lead.item.title}")
    for section in edition.sections:
        echo(f"  {settings.rubric(section.rubric).label_for(rendered.variant.locale):<24}{len(section.items):>4}")
    if edition.more or rendered.moved_to_more:
        echo(f"  {'more on the web':<24}{len(edition.more) + rendered.moved_to_more:>4}")
    budget = settings.layout.budget_bytes
    echo(f"  HTML      {rendered.html_bytes:,} bytes of {budget:,} ({rendered.html_bytes / budget:.0%})")
    timings = made.timings
    echo(f"  time      gather {timings.gather * 1000:.0f} ms, rank {timings.rank * 1000:.1f} ms, render {timings.render * 1000:.0f} ms")
    echo("  wrote     " + ", ".join(str(f) for f in built.files))
    for warning in rendered.warnings:
        _err("warning", warning)


def main() -> None:
    """Entry point: a DigestError is one line on stderr with its exit code, never a traceback."""
    try:
        cli.main(prog_name="digest", standalone_mode=False)
    except click.exceptions.Abort:
        _err("error", "interrupted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DigestError as exc:
        _err("error", str(exc))
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(1)
