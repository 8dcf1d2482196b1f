"""`digest report`: what each edition's send came to: sent, bounced hard and soft, complaints against
Gmail's 0.3 % line, unsubscribes; for people and for monitoring."""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from digest.cli.options import (
    CONTEXT,
    config_option,
    database_option,
    date_option,
    echo_error,
    load_settings,
    need_config,
)
from digest.core import config
from digest.delivery.report import COMPLAINTS_LIMIT, EditionReport, reports
from subscribers.store import Store


@click.command(context_settings=CONTEXT, short_help="What each edition came to: bounces, complaints, unsubscribes.")
@config_option
@database_option
@date_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="A table for people, JSON for monitoring.")
def report(config_path: str | None, database: str | None, day: str | None, fmt: str) -> None:
    """Per edition (of --date, else the last seven): sent, bounced hard (at the send and after it)
    and soft, complaints and the complaint rate, unsubscribes.

    \b
    Gmail and Yahoo want complaints under 0.3 % of what was sent: a warning past 0.1 %, and the exit
    code is 1 when an edition is at or past 0.3 % (for a monitor). Bounces and complaints arrive
    after the send: run `digest bounces read` or `fetch` first.
    """
    settings = load_settings(config_path, database=database)
    need_config(settings, "report", "the list id comes from it")
    store = Store.open(settings.database, create=False)
    try:
        found = reports(store, settings.newsletter.list_id, config.edition_day(day, settings) if day else None)
    finally:
        store.close()
    if fmt == "json":
        click.echo(json.dumps([_as_json(r) for r in found], indent=2))
    elif not found:
        click.echo("No edition enqueued" + (f" for {day}" if day else "") + ".")
    for r in found:
        if fmt == "table":
            _print(r)
        if r.level != "ok":
            echo_error("warning", f"{r.edition}: complaints at {r.complaint_rate:.2%} of what was sent, "
                       + ("at or past Gmail's 0.3 % line" if r.level == "over" else "past 0.1 %, near Gmail's 0.3 % line"))
    if any(r.complaint_rate >= COMPLAINTS_LIMIT for r in found):
        sys.exit(1)


def _print(r: EditionReport) -> None:
    echo = click.echo
    echo(f"Edition {r.edition} (enqueued {r.enqueued_at:%Y-%m-%d %H:%M} UTC)")
    echo(f"  {'sent':<14}{r.sent:>9,}")
    echo(f"  {'bounced hard':<14}{r.bounced_hard:>9,}   {r.refused:,} at the send, {r.hard:,} after it")
    echo(f"  {'bounced soft':<14}{r.soft:>9,}")
    echo(f"  {'complaints':<14}{r.complaints:>9,}   {r.complaint_rate:.3%} of sent (Gmail's line: 0.3 %)")
    echo(f"  {'unsubscribes':<14}{r.unsubscribes:>9,}")


def _as_json(r: EditionReport) -> dict[str, Any]:
    return {"edition": r.edition, "day": r.day.isoformat(), "enqueued_at": r.enqueued_at.isoformat(), "sent": r.sent,
            "bounced_hard": r.bounced_hard, "bounced_hard_at_send": r.refused, "bounced_hard_after": r.hard,
            "bounced_soft": r.soft, "complaints": r.complaints, "complaint_rate": round(r.complaint_rate, 6),
            "complaint_level": r.level, "unsubscribes": r.unsubscribes}
