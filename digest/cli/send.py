"""`digest send`: the edition to every active subscriber, a dry run, or one test copy."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from digest.cli.options import (
    CONTEXT,
    address,
    database_option,
    echo_error,
    edition_options,
    load_settings,
    need_config,
    source_specs,
)
from digest.cli.pipeline import report_skipped, report_sources
from digest.core import config
from digest.core.errors import DigestError
from digest.delivery.ledger import Backlog, Ledger
from digest.delivery.loop import Report
from digest.delivery.send import Sender, dry_run, send_test_copy
from digest.delivery.transports.base import Kind
from digest.pipeline import edition as pipeline
from subscribers.store import Store
from subscribers.tokens import Tokens, load_keys


@click.command(context_settings=CONTEXT, short_help="Deliver the day's edition to every subscriber.")
@edition_options
@database_option
@click.option("--outbox", "outbox", type=click.Path(file_okay=False), envvar="DIGEST_OUTBOX",
              help="Write one .eml per message into this folder instead of using [smtp]. [env: DIGEST_OUTBOX]")
@click.option("--dry-run", "rehearse", is_flag=True, help="Render and personalise every message; send nothing, record nothing.")
@click.option("--test-to", metavar="EMAIL", help="Send one copy to this address only; the ledger is left alone.")
def send(config_path: str | None, day: str | None, timezone: str | None, sources: tuple[str, ...],
         database: str | None, outbox: str | None, rehearse: bool, test_to: str | None) -> None:
    """Send the edition to every active subscriber, each with the rubrics and language they chose.

    \b
    Without an [smtp] table in digest.toml, messages go to the outbox folder. Running it again for
    the same edition sends only what is left (the ledger remembers every message); a run killed
    half-way is finished by the next one.

    \b
    Exit codes: 0 all delivered; 1 some deferred, failed or interrupted (run again later);
                2 usage or configuration error, or another send of this edition is running.
    """
    if rehearse and test_to:
        raise click.UsageError("--dry-run and --test-to go one at a time")
    settings = load_settings(config_path, timezone, database=database)
    need_config(settings, "send", "the sender, the links in the email and the list id come from it",
                "`digest build --source …` makes an edition without one")
    day_ = config.edition_day(day, settings)
    store = Store.open(settings.database, create=test_to is not None)
    if not test_to and not sum(store.count().values()):
        raise DigestError(f"the subscriber list in {settings.database} is empty: nothing to send",
                          f"import subscribers first: digest subscribers import FILE.csv -c {settings.path}")
    if not rehearse and not test_to:
        key = pipeline.edition_key(settings, day_)
        backlog = Ledger(store, key).read(Ledger.backlog)
        if backlog.idle:  # the ledger says it all: no source is read, no variant rendered
            _print_idle(key, backlog)
            sys.exit(0 if not backlog.owed else 1)
    prepared = pipeline.prepare(settings, day_, source_specs(sources, settings))
    report_sources(prepared.gathered)
    pipeline.refuse_empty(prepared, "nothing is sent")
    keys, current = load_keys(settings.secret_file)
    sender = Sender(settings, prepared, store, Tokens(keys, current, settings.newsletter.list_id),
                    outbox=Path(outbox) if outbox else None)
    failed_sources = bool(prepared.gathered.errors)
    if test_to:
        _test_copy(sender, address(test_to, "--test-to"))
    elif rehearse:
        _rehearse(sender, failed_sources)
    else:
        _deliver(sender, failed_sources)


def _test_copy(sender: Sender, to: str) -> None:
    outcome = send_test_copy(sender, to)
    click.echo(f"test copy to {to} via {sender.destination()}: {outcome.kind}"
               + (f" ({outcome.code} {outcome.message})" if outcome.kind != "sent" else ""))
    report_skipped(sender.skipped)
    sys.exit(0 if outcome.kind == "sent" and not sender.skipped else 1)


def _rehearse(sender: Sender, failed_sources: bool) -> None:
    result = dry_run(sender)
    echo = click.echo
    echo(f"Dry run of {sender.edition}: nothing sent, nothing recorded")
    echo(f"  messages  {result.messages:,} ({result.bytes / max(1, result.messages) / 1024:.0f} KiB each on average)")
    echo(f"  variants  {result.compiles} rendered")
    for variant, count in sorted(result.variants.items(), key=lambda kv: (-kv[1], kv[0].locale)):
        chosen = ", ".join(sorted(variant.rubrics)) if variant.rubrics else "all rubrics"
        echo(f"    {variant.locale}  {chosen:<50} {count:>8,}")
    backlog = result.backlog
    echo(f"  ledger    a real run now would send {backlog.would_send:,}: {backlog.sent:,} sent already, "
         f"{backlog.owed - backlog.due - backlog.in_flight:,} deferred until later, {backlog.new:,} new readers")
    echo(f"  elapsed   {result.elapsed:.2f} s")
    report_skipped(sender.skipped)
    sys.exit(1 if failed_sources or sender.skipped else 0)


def _deliver(sender: Sender, failed_sources: bool) -> None:
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
    sys.exit(0 if report.ok and not failed_sources and not sender.skipped else 1)


def _print_idle(edition: str, backlog: Backlog) -> None:
    if backlog.owed:
        when = backlog.next_due.astimezone().strftime("%Y-%m-%d %H:%M %Z") if backlog.next_due else "later"
        click.echo(f"Nothing due yet: {backlog.owed:,} messages of edition {edition} are deferred until {when}; "
                   f"{backlog.sent:,} sent already. Run again then.")
    else:
        click.echo(f"Nothing new to send: edition {edition} has gone to {backlog.sent:,} subscribers already.")


def _print_send_report(report: Report) -> None:
    echo = click.echo
    done = report.outcomes[Kind.SENT] + report.outcomes[Kind.DEFERRED] + report.outcomes[Kind.FAILED]
    if done == 0 and not report.interrupted and not report.errors:
        if report.left:
            when = report.next_due.astimezone().strftime("%Y-%m-%d %H:%M %Z") if report.next_due else "later"
            echo(f"Nothing due yet: {report.left:,} messages of edition {report.edition} are deferred until {when}; "
                 f"{report.already_sent:,} sent already. Run again then.")
        else:
            echo(f"Nothing new to send: edition {report.edition} has gone to {report.already_sent:,} subscribers already.")
        return
    echo(f"Edition {report.edition} → {report.destination}")
    echo(f"  sent          {report.outcomes[Kind.SENT]:>8,}")
    echo(f"  deferred      {report.outcomes[Kind.DEFERRED]:>8,}   (4xx or no answer: the next run retries them)")
    echo(f"  failed        {report.outcomes[Kind.FAILED]:>8,}   ({report.bounced:,} addresses refused for good, marked bounced)")
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
        due_again = report.next_due.astimezone().strftime('%H:%M %Z') if report.next_due else 'the next run'
        echo(f"  left          {report.left:>8,}   (due again from {due_again})")
    for error in report.errors:
        echo_error("error", f"{error}; nothing more was sent, the rest stays due for the next run")
    if report.interrupted:
        echo_error("warning", "interrupted: what was in flight is recorded; run again to send the rest")
