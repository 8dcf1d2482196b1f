"""The `digest` command line: parses options, calls the pipeline, prints. No logic of its own."""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from digest import __version__
from digest.core import config
from digest.core.config import Settings, SourceSpec
from digest.core.errors import ConfigError, DigestError
from digest.pipeline import edition as pipeline
from digest.pipeline.gather import Gathered
from digest.pipeline.rank import ranked_items

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _err(kind: str, text: str) -> None:
    click.echo(f"digest: {kind}: {text}", err=True)


def load_settings(config_path: str | None, timezone: str | None, locale: str | None = None) -> Settings:
    return config.with_overrides(config.find(config_path), timezone=timezone, locale=locale)


parse_day = config.edition_day


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


def _address(value: str, option: str) -> str:
    from digest.core.errors import InvalidSubscriber
    from subscribers.validate import normalise_email

    try:
        return normalise_email(value)
    except InvalidSubscriber as exc:
        raise ConfigError(f"{option} {value!r}: {exc.reason if hasattr(exc, 'reason') else exc}") from None


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
    """digest: turn a newsroom's day into a ranked email digest, and deliver it.

    \b
    A day's work:  digest build -c digest.toml --check      look at it
                   digest preview -c digest.toml            or watch it while editing
                   digest send -c digest.toml               deliver it (again: only what is left)
    \b
    Exit codes: 0 ok; 1 partly done (a source failed, messages deferred or failed);
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
@click.option("--check", is_flag=True,
              help="Also check the email (size, alt text, links, one h1, text size, contrast, unsubscribe link, "
                   "subject and preheader lengths); exit 1 when one fails.")
def build(config_path, day, timezone, sources, out, locale, to, check) -> None:
    """Make the day's edition and write it as HTML, plain text and a ready .eml.

    \b
    Example:
      digest build -c examples/digest.toml --date 2026-11-29 --out edition/
    """
    settings = load_settings(config_path, timezone, locale)
    if to:
        to = _address(to, "--for")
    made = pipeline.make(settings, parse_day(day, settings), source_specs(sources, settings))
    report_sources(made.gathered)
    if not made.edition.items:
        what = "every source failed" if made.gathered.errors and not made.gathered.items else "the day has no items"
        raise DigestError(f"the edition has no items ({what}): nothing is written", "check the sources and --date")
    built = pipeline.build(made, Path(out), to=to)
    _print_build_report(built)
    report_skipped(built.rendered.skipped)
    failures = []
    if check:
        from digest.web import checks

        results = checks.run(built.rendered, settings.layout.budget_bytes)
        failures = checks.failed(results)
        click.echo("Checks:")
        for result in results:
            click.echo(f"  {result}")
        if failures:
            _err("error", f"{len(failures)} check(s) failed: {', '.join(c.name for c in failures)}")
    if made.gathered.errors or failures or built.rendered.skipped:
        sys.exit(1)


def report_skipped(skipped) -> None:
    """Items the email could not show (already escaped for a terminal): the edition went without them."""
    for item in skipped:
        _err("error", f"{item} could not be rendered, left out")


def _print_build_report(built: pipeline.Built) -> None:
    made, rendered, settings = built.made, built.rendered, built.made.settings
    edition, gathered = made.edition, made.gathered
    from digest.pipeline.i18n import long_date

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
    if rendered.dropped:
        echo(f"  not shown {rendered.dropped} items past layout.more_max (the email links to the archive for them)")
    timings = made.timings
    echo(f"  time      gather {timings.gather * 1000:.0f} ms, rank {timings.rank * 1000:.1f} ms, render {timings.render * 1000:.0f} ms")
    echo("  wrote     " + ", ".join(str(f) for f in built.files))
    for warning in rendered.warnings:
        _err("warning", warning)


def _register_subscribers() -> None:
    from digest.cli.subscribers import subscribers

    cli.add_command(subscribers)
    from digest.cli.web import serve
    cli.add_command(serve)


_register_subscribers()


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


@cli.command(context_settings=CONTEXT, short_help="Deliver the day's edition to every subscriber.")
@common
@click.option("--database", metavar="URL_OR_PATH", envvar="DIGEST_DATABASE",
              help="The subscribers' database (default: subscribers.database in digest.toml, else ./digest.db). [env: DIGEST_DATABASE]")
@click.option("--outbox", "outbox", type=click.Path(file_okay=False), envvar="DIGEST_OUTBOX",
              help="Write one .eml per message into this folder instead of using [smtp]. [env: DIGEST_OUTBOX]")
@click.option("--dry-run", is_flag=True, help="Render and personalise every message; send nothing, record nothing.")
@click.option("--test-to", metavar="EMAIL", help="Send one copy to this address only; the ledger is left alone.")
def send(config_path, day, timezone, sources, database, outbox, dry_run, test_to) -> None:
    """Send the edition to every active subscriber, each with the rubrics and language they chose.

    \b
    Without an [smtp] table in digest.toml, messages go to the outbox folder. Running it again for
    the same edition sends only what is left (the ledger remembers every message); a run killed
    half-way is finished by the next one.

    \b
    Exit codes: 0 all delivered; 1 some deferred, failed or interrupted (run again later);
                2 usage or configuration error, or another send of this edition is running.
    """
    from dataclasses import replace as _replace

    from digest.delivery.ledger import Ledger
    from digest.delivery.send import Sender, send_test_copy
    from digest.delivery.send import dry_run as run_dry
    from subscribers.store import Store
    from subscribers.tokens import Tokens, load_keys

    if dry_run and test_to:
        raise click.UsageError("--dry-run and --test-to go one at a time")
    settings = load_settings(config_path, timezone)
    if settings.path is None:
        raise ConfigError("no digest.toml here and no -c: digest send needs one (the sender, the links in the "
                          "email and the list id come from it)",
                          "pass -c path/to/digest.toml or set DIGEST_CONFIG; `digest build --source …` makes an "
                          "edition without one")
    if database:
        settings = _replace(settings, database=database)
    day_ = parse_day(day, settings)
    store = Store.open(settings.database, create=test_to is not None)
    if not test_to and not sum(store.count().values()):
        raise DigestError(f"the subscriber list in {settings.database} is empty: nothing to send",
                          f"import subscribers first: digest subscribers import FILE.csv -c {settings.path}")
    if not dry_run and not test_to:
        backlog = Ledger(store.engine, pipeline.edition_key(settings, day_)).read(Ledger.backlog)
        if backlog.idle:  # the ledger says it all: no source is read, no variant rendered
            _print_idle(pipeline.edition_key(settings, day_), backlog)
            sys.exit(0 if not backlog.owed else 1)
    made = pipeline.make(settings, day_, source_specs(sources, settings))
    report_sources(made.gathered)
    if not made.edition.items:
        raise DigestError("the edition has no items: nothing is sent", "check the sources and --date")
    keys, current = load_keys(settings.secret_file)
    tokens = Tokens(keys, current, settings.newsletter.list_id)
    sender = Sender(settings, made, store, tokens, outbox=Path(outbox) if outbox else None)
    echo = click.echo

    if test_to:
        address = _address(test_to, "--test-to")
        outcome = send_test_copy(sender, address)
        echo(f"test copy to {address} via {sender.destination()}: {outcome.kind}"
             + (f" ({outcome.code} {outcome.message})" if outcome.kind != "sent" else ""))
        report_skipped(sender.skipped)
        sys.exit(0 if outcome.kind == "sent" and not sender.skipped else 1)

    if dry_run:
        result = run_dry(sender)
        echo(f"Dry run of {sender.edition}: nothing sent, nothing recorded")
        echo(f"  messages  {result['messages']:,} ({result['bytes'] / max(1, result['messages']) / 1024:.0f} KiB each on average)")
        echo(f"  variants  {result['compiles']} rendered")
        for variant, count in sorted(result["variants"].items(), key=lambda kv: (-kv[1], kv[0].locale)):
            chosen = ", ".join(sorted(variant.rubrics)) if variant.rubrics else "all rubrics"
            echo(f"    {variant.locale}  {chosen:<50} {count:>8,}")
        backlog = result["backlog"]
        echo(f"  ledger    a real run now would send {backlog.would_send:,}: {backlog.sent:,} sent already, "
             f"{backlog.owed - backlog.due - backlog.in_flight:,} deferred until later, {backlog.new:,} new readers")
        echo(f"  elapsed   {result['elapsed']:.2f} s")
        report_skipped(sender.skipped)
        sys.exit(1 if made.gathered.errors or sender.skipped else 0)

    with contextlib.ExitStack() as stack:
        def start(due: int) -> None:
            # A bar on a terminal only: cron's log gets the summary, which says it all.
            if due and sys.stderr.isatty():
                bar = stack.enter_context(
                    click.progressbar(length=due, label="Sending", file=sys.stderr, show_pos=True, show_eta=True))
                sender.progress = bar.update

        sender.on_start = start
        report = sender.run()
    _print_send_report(report)
    report_skipped(sender.skipped)
    sys.exit(0 if report.ok and not made.gathered.errors and not sender.skipped else 1)


@cli.command(context_settings=CONTEXT, short_help="Serve a live preview of the edition for editors.")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), envvar="DIGEST_CONFIG",
              help="digest.toml to read (default: ./digest.toml if present, else built-in defaults). [env: DIGEST_CONFIG]")
@click.option("--date", "day", metavar="YYYY-MM-DD", envvar="DIGEST_DATE", help="The edition's date (default: today). [env: DIGEST_DATE]")
@click.option("--timezone", metavar="ZONE", envvar="DIGEST_TIMEZONE", help="The newsroom's IANA time zone. [env: DIGEST_TIMEZONE]")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="DIGEST_PREVIEW_HOST", help="Address to listen on.")
@click.option("--port", default=8026, show_default=True, type=int, envvar="DIGEST_PREVIEW_PORT", help="Port to listen on.")
def preview(config_path, day, timezone, host, port) -> None:
    """Show the edition as readers will see it: at 375 px and 600+ px, as plain text, with the subject,
    the preheader, the size against the budget and the checks; pick a language and rubrics.

    \b
    Editing a template, digest.toml or a local source file reloads the page by itself. Nothing is
    opened for you: the URL is printed.
    """
    from digest.web.preview import State, serve

    state = State(config.config_path(config_path), day, timezone)
    settings = state.load()  # a broken configuration is reported now, not on the first request
    parse_day(day, settings)
    click.echo(f"Preview of {settings.newsletter.name}: http://{host}:{port}/  (Ctrl-C to stop)")
    serve(state, host, port)


def _print_idle(edition: str, backlog) -> None:
    if backlog.owed:
        when = backlog.next_due.astimezone().strftime("%Y-%m-%d %H:%M %Z") if backlog.next_due else "later"
        click.echo(f"Nothing due yet: {backlog.owed:,} messages of edition {edition} are deferred until {when}; "
                   f"{backlog.sent:,} sent already. Run again then.")
    else:
        click.echo(f"Nothing new to send: edition {edition} has gone to {backlog.sent:,} subscribers already.")


def _print_send_report(report) -> None:
    echo = click.echo
    done = report.outcomes["sent"] + report.outcomes["deferred"] + report.outcomes["failed"]
    if done == 0 and not report.interrupted and not report.errors:
        if report.left:
            when = report.next_due.astimezone().strftime("%Y-%m-%d %H:%M %Z") if report.next_due else "later"
            echo(f"Nothing due yet: {report.left:,} messages of edition {report.edition} are deferred until {when}; "
                 f"{report.already_sent:,} sent already. Run again then.")
        else:
            echo(f"Nothing new to send: edition {report.edition} has gone to {report.already_sent:,} subscribers already.")
        return
    echo(f"Edition {report.edition} → {report.destination}")
    echo(f"  sent          {report.outcomes['sent']:>8,}")
    echo(f"  deferred      {report.outcomes['deferred']:>8,}   (4xx or no answer: the next run retries them)")
    echo(f"  failed        {report.outcomes['failed']:>8,}   ({report.bounced:,} addresses refused for good, marked bounced)")
    echo(f"  already sent  {report.already_sent:>8,}")
    if report.retried:
        echo(f"  retried       {report.retried:>8,}   (4xx or a dropped connection, sent again in this run)")
    if report.added and report.already_sent:
        echo(f"  new readers   {report.added:>8,}   (subscribed since this edition's last run)")
    if report.recovered:
        echo(f"  resent        {report.recovered:>8,}   (in flight when a previous run was killed)")
    echo(f"  variants      {report.variants:>8,}   rendered")
    echo(f"  elapsed       {report.elapsed:>8.2f} s ({report.rate:,.0f} messages/s)")
    if report.left:
        echo(f"  left          {report.left:>8,}   (due again from {report.next_due.astimezone().strftime('%H:%M %Z') if report.next_due else 'the next run'})")
    for error in report.errors:
        _err("error", f"{error}; nothing more was sent, the rest stays due for the next run")
    if report.interrupted:
        _err("warning", "interrupted: what was in flight is recorded; run again to send the rest")
