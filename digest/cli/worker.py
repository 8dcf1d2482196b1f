"""`digest worker`: deliver every enqueued edition until SIGTERM. Apart from `digest send`: a worker
never gathers nor renders, and starts without importing the pipeline that does."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from digest.cli.options import (
    CONTEXT,
    config_option,
    database_option,
    echo_error,
    load_settings,
    need_config,
    now_option,
    outbox_option,
)
from digest.core.clock import clock_from
from digest.delivery.transports import Kind
from digest.delivery.worker import Worker
from subscribers.store import Store
from subscribers.tokens import newsletter_tokens


@click.command(context_settings=CONTEXT, short_help="Deliver every enqueued edition until stopped.")
@config_option
@database_option
@now_option
@outbox_option
def worker(config_path: str | None, database: str | None, now: str | None, outbox: str | None) -> None:
    """Claim the due rows of every enqueued edition and deliver them, then sleep until the next one is
    due; on SIGTERM (or SIGINT), finish what is in flight and stop. Run as many as the relay allows, on
    as many machines as you like (with the database on PostgreSQL): they share the editions, and the
    relay's rate and connections hold for all of them together.
    """
    settings = load_settings(config_path, database=database)
    need_config(settings, "worker", "the sender, the relay and the list id come from it")
    store = Store.open(settings.database, create=False)
    runner = Worker(settings, store, newsletter_tokens(settings.secret_file, settings.newsletter.list_id), clock_from(now), outbox=Path(outbox) if outbox else None)
    click.echo(f"Worker {runner.queue.worker} → {runner.transport.where}; Ctrl-C or SIGTERM to stop", err=True)
    report = runner.run()
    counted = report.outcomes
    click.echo(f"Worker stopped: {counted[Kind.SENT]:,} sent, {counted[Kind.DEFERRED]:,} deferred, "
               f"{counted[Kind.FAILED]:,} failed in {report.elapsed:.0f} s", err=True)
    for error in report.errors:
        echo_error("error", error)
    for item in runner.skipped:  # as cli/pipeline.py's report_skipped says it, without importing the pipeline
        echo_error("error", f"{item} could not be rendered, left out")
    sys.exit(1 if report.errors else 0)
