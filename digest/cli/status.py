"""`digest status`: where each edition stands, for people and for monitoring."""
from __future__ import annotations

import json
from typing import Any

import click

from digest.cli.options import CONTEXT, config_option, database_option, date_option, load_settings, need_config
from digest.core import config
from digest.delivery.status import EditionState, states, unsent
from subscribers.store import Store


@click.command(context_settings=CONTEXT, short_help="Where each edition stands: who got it, who did not, and why.")
@config_option
@database_option
@date_option
@click.option("--list", "listed", type=click.Choice(["deferred", "failed", "bounced", "pending", "superseded", "unneeded"]),
              help="Also list the readers in this state, with their last SMTP reply.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="A table for people, JSON for monitoring.")
def status(config_path: str | None, database: str | None, day: str | None, listed: str | None, fmt: str) -> None:
    """Per edition (of --date, else the last seven enqueued): its rows by state, the pending ones by the
    hour they are due, the workers holding leases; with --list, the readers in one state.

    \b
    States: pending (due at not_before), leased (a worker is sending it), sent, deferred (a 4xx: due
    again later), failed (a 5xx for the message), bounced (the address does not exist), superseded (a
    newer edition reached the reader first), cancelled (the reader left before it went), unneeded (a
    weekly reader who had every story of the week already, in its daily editions: nothing is sent).
    """
    settings = load_settings(config_path, database=database)
    need_config(settings, "status", "the list id comes from it")
    store = Store.open(settings.database, create=False)
    found = states(store, settings.newsletter.list_id, config.edition_day(day, settings) if day else None)
    lists = {s.key: unsent(store, s.key, listed) for s in found} if listed else {}
    store.close()
    if fmt == "json":
        click.echo(json.dumps([_as_json(s, lists.get(s.key)) for s in found], indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo("No edition enqueued" + (f" for {day}" if day else "") + ".")
    for state in found:
        _print(state)
        for row in lists.get(state.key, []):
            reply = f"{row.code} {row.reply}" if row.code else (row.reply or "")
            click.echo(f"    {row.email:<40} {row.attempts:>3} attempts  due {row.due:%Y-%m-%d %H:%M}  {reply}")


def _print(state: EditionState) -> None:
    echo = click.echo
    echo(f"Edition {state.key} ({state.status}, enqueued {state.enqueued_at:%Y-%m-%d %H:%M} UTC)")
    for name, count in state.counts.items():
        extra = ""
        if name == "pending" and state.due_by_hour:
            extra = "   due " + ", ".join(f"{hour:%m-%d %H:00}: {n:,}" for hour, n in state.due_by_hour[:8])
        if name == "leased" and state.leases:
            extra = "   held by " + ", ".join(f"{owner} ({n:,}, until {until:%H:%M:%S})" for owner, n, until in state.leases)
        echo(f"  {name:<12}{count:>9,}{extra}")


def _as_json(state: EditionState, listed: list[Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "edition": state.key, "day": state.day.isoformat(), "revision": state.revision, "status": state.status,
        "enqueued_at": state.enqueued_at.isoformat(), "counts": state.counts,
        "due_by_hour": [{"hour": hour.isoformat(), "rows": n} for hour, n in state.due_by_hour],
        "leases": [{"worker": owner, "rows": n, "until": until.isoformat()} for owner, n, until in state.leases],
    }
    if listed is not None:
        out["readers"] = [{"email": r.email, "status": r.status, "attempts": r.attempts, "code": r.code,
                           "reply": r.reply, "due": r.due.isoformat()} for r in listed]
    return out
