"""`digest send`: enqueue the day's edition, then deliver until nothing is due (`digest worker` is
cli/worker.py's)."""
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
    now_option,
    outbox_option,
    source_specs,
)
from digest.cli.pipeline import report_skipped, report_sources
from digest.core import config
from digest.core.clock import clock_from
from digest.core.errors import DigestError
from digest.delivery import rhythms
from digest.delivery.editions import Editions
from digest.delivery.loop import Report
from digest.delivery.queue import Backlog, Queue
from digest.delivery.send import Sender, dry_run, send_test_copy
from digest.delivery.transports import Kind
from digest.pipeline import edition as pipeline
from subscribers.schema import subscribers
from subscribers.store import Store
from subscribers.tokens import newsletter_tokens


@click.command(context_settings=CONTEXT, short_help="Deliver the day's edition to every subscriber.")
@edition_options
@database_option
@now_option
@outbox_option
@click.option("--dry-run", "rehearse", is_flag=True, help="Render and personalise every message; send nothing, record nothing.")
@click.option("--test-to", metavar="EMAIL", help="Send one copy to this address only; the queue is left alone.")
@click.option("--enqueue-only", is_flag=True,
              help="Freeze the edition and give each reader a row due at their hour; send nothing (workers will).")
@click.option("--replace", is_flag=True,
              help="Enqueue the day's edition again from the sources, as a correction: the readers the first one "
                   "has not reached yet get this one instead.")
def send(config_path: str | None, day: str | None, timezone: str | None, sources: tuple[str, ...],
         database: str | None, now: str | None, outbox: str | None, rehearse: bool, test_to: str | None,
         enqueue_only: bool, replace: bool) -> None:
    """Enqueue the edition and send it to every active subscriber, each with the rubrics and language
    they chose, at their hour when [delivery] local_time says one.

    \b
    The edition is frozen when it is enqueued: sending again (from cron, or after a crash) sends only
    what is left, from the same content, whatever the sources say since. Without an [smtp] table in
    digest.toml, messages go to the outbox folder. Any number of `digest send` and `digest worker`
    processes, on one machine or several (with PostgreSQL), share one edition.

    \b
    Exit codes: 0 all delivered; 1 some deferred, failed or interrupted (run again later);
                2 usage or configuration error.
    """
    if sum((rehearse, bool(test_to), enqueue_only)) > 1:
        raise click.UsageError("--dry-run, --test-to and --enqueue-only go one at a time")
    settings = load_settings(config_path, timezone, database=database)
    need_config(settings, "send", "the sender, the links in the email and the list id come from it",
                "`digest build --source …` makes an edition without one")
    clock = clock_from(now)
    day_ = config.edition_day(day, settings, clock.now())
    store = Store.open(settings.database, create=test_to is not None)
    if not test_to and next(store.iter_rows([subscribers.c.id], batch=1), None) is None:  # one row looked for
        raise DigestError(f"the subscriber list in {settings.database} is empty: nothing to send",
                          f"import subscribers first: digest subscribers import FILE.csv -c {settings.path}")
    frozen = None if replace else Editions(store).open_edition(settings.newsletter.list_id, day_)
    if frozen is not None and not (rehearse or test_to or enqueue_only):
        week = Editions(store).week_keys(settings.newsletter.list_id, day_)
        backlog = rhythms.backlog(Queue(store, clock), settings, day_, frozen.key, week)
        week_owed = not week and rhythms.has_weekly_readers(settings, store, day_)
        if backlog.idle and not week_owed:  # the queue says it all: no source is read, no variant rendered
            _print_idle(frozen.key, backlog)
            sys.exit(1 if backlog.unsent else 0)  # readers waiting for their hour are the plan, not a failure
    prepared = None
    if frozen is None:
        prepared = pipeline.prepare(settings, day_, source_specs(sources, settings))
        report_sources(prepared.gathered)
        pipeline.refuse_empty(prepared, "nothing is sent")
    sender = Sender(settings, prepared, store, newsletter_tokens(settings.secret_file, settings.newsletter.list_id), day=day_, outbox=Path(outbox) if outbox else None,
                    clock=clock, replace=replace)
    failed_sources = bool(prepared and prepared.gathered.errors)
    if test_to:
        _test_copy(sender, address(test_to, "--test-to"))
    elif rehearse:
        _rehearse(sender, failed_sources)
    elif enqueue_only:
        _enqueue_only(sender, failed_sources)
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
         f"{backlog.owed - backlog.due:,} due later, {backlog.new:,} new readers")
    echo(f"  elapsed   {result.elapsed:.2f} s")
    report_skipped(sender.skipped)
    sys.exit(1 if failed_sources or sender.skipped else 0)


def _enqueue_only(sender: Sender, failed_sources: bool) -> None:
    enqueued = sender.enqueue()
    skipped = list(enqueued.skipped)
    for one in [enqueued, *sender.enqueue_week()]:
        backlog = Queue(sender.store, sender.clock).backlog(one.frozen.key)
        state = "frozen now" if one.fresh else "enqueued already"
        click.echo(f"Edition {one.frozen.key} ({state}): {one.added:,} readers added, "
                   f"{one.rendered} variants rendered; {backlog.due:,} due now, "
                   f"{backlog.owed - backlog.due:,} later"
                   + (f" (from {backlog.next_due.astimezone().strftime('%Y-%m-%d %H:%M %Z')})" if backlog.next_due else ""))
        if one.kept is not None:
            click.echo(f"  items     {one.kept.new:,} new stories kept, {one.kept.corrected:,} corrected, "
                       f"{one.kept.unchanged:,} known already")
        skipped += [item for item in one.skipped if item not in skipped]
    if enqueued.replaced:
        click.echo(f"  it replaces {enqueued.replaced}: the readers that one had not reached get this one")
    report_skipped(skipped)
    sys.exit(1 if failed_sources or skipped else 0)


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
    for week in sender.weekly:
        click.echo(f"  weekly        {week.frozen.key}: {week.added:,} readers added"
                   + (f" (the week without the stories {len(week.readers):,} of them had already)" if week.frozen.part else ""))
    report_skipped(sender.skipped)
    sys.exit(0 if report.ok and not failed_sources and not sender.skipped else 1)


def _print_idle(edition: str, backlog: Backlog) -> None:
    if backlog.owed:
        when = backlog.next_due.astimezone().strftime("%Y-%m-%d %H:%M %Z") if backlog.next_due else "later"
        why = ", ".join(part for part in (f"{backlog.waiting:,} waiting for their reader's hour" if backlog.waiting else "",
                                          f"{backlog.unsent:,} deferred" if backlog.unsent else "") if part)
        click.echo(f"Nothing due yet: {backlog.owed:,} messages of edition {edition} are due from {when} ({why}); "
                   f"{backlog.sent:,} sent already. Run again then.")
    else:
        click.echo(f"Nothing new to send: edition {edition} has gone to {backlog.sent:,} subscribers already.")


def _print_send_report(report: Report) -> None:
    echo = click.echo
    counted = report.outcomes
    if counted[Kind.SENT] + counted[Kind.DEFERRED] + counted[Kind.FAILED] == 0 and not (report.interrupted or report.errors):
        _print_idle(report.edition, Backlog(0, 0, 0, report.already_sent, report.left + report.waiting, report.next_due,
                                            waiting=report.waiting))
        return
    echo(f"Edition {report.edition} → {report.destination}")
    echo(f"  sent          {counted[Kind.SENT]:>8,}")
    echo(f"  deferred      {counted[Kind.DEFERRED]:>8,}   (4xx or no answer: the next run retries them)")
    echo(f"  failed        {counted[Kind.FAILED]:>8,}   ({report.bounced:,} addresses refused for good, marked bounced)")
    echo(f"  already sent  {report.already_sent:>8,}")
    if report.retried:
        echo(f"  retried       {report.retried:>8,}   (4xx or a dropped connection, sent again in this run)")
    if report.added and report.already_sent:
        echo(f"  new readers   {report.added:>8,}   (subscribed since this edition was enqueued)")
    if report.recovered:
        echo(f"  resent        {report.recovered:>8,}   (in flight when a previous run was killed)")
    echo(f"  variants      {report.variants:>8,}   rendered")
    echo(f"  elapsed       {report.elapsed:>8.2f} s ({report.rate:,.0f} messages/s)")
    due_from = report.next_due.astimezone().strftime("%H:%M %Z") if report.next_due else "the next run"
    if report.left:
        echo(f"  left          {report.left:>8,}   (deferred or not reached: due again from {due_from})")
    if report.waiting:
        echo(f"  waiting       {report.waiting:>8,}   (for their reader's hour, from {due_from}: a worker or the next run sends them)")
    if report.in_flight:
        echo(f"  in flight     {report.in_flight:>8,}   (held by another worker; due again if its lease runs out)")
    for error in report.errors:
        echo_error("error", f"{error}; nothing more was sent, the rest stays due for the next run")
    if report.interrupted:
        echo_error("warning", "interrupted: what was in flight is recorded; run again to send the rest")

