"""`digest subscribers …`: the audience from the command line. Parses, calls the store, prints."""
from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import click

from digest.cli import listing
from digest.cli.options import (
    CONTEXT,
    DigestGroup,
    F,
    UserError,
    config_option,
    database_option,
    load_settings,
)
from digest.core import config
from digest.core.config import Settings
from subscribers.consent import Origin
from subscribers.csvio import export_csv, export_history, import_csv, iso_utc
from subscribers.mailin import read_headers, read_piped
from subscribers.model import CADENCES, STATUSES, Subscriber
from subscribers.store import Store
from subscribers.tokens import TOKEN_LENGTH, load_keys, newsletter_tokens
from subscribers.validate import check_delivery_time, check_rubrics, check_weekday, normalise_email, split_rubrics


@click.group("subscribers", cls=DigestGroup, context_settings=CONTEXT)
def subscribers() -> None:
    """Who receives the digest: add, import, export, list, count, remove, unsubscribe, reset, history, erase.

    \b
    The database is --database (a file path or a SQLAlchemy URL), else
    `database` in the [subscribers] table of digest.toml, else ./digest.db.
    Rubric keys are checked against the config's rubrics (-c, else
    ./digest.toml, else the built-in defaults, which have only `actualite`).
    """


def _store_options(func: F) -> F:
    return config_option(database_option(func))


def _settings(config_path: str | None) -> Settings:
    return load_settings(config_path)


def _open(settings: Settings, database: str | None, create: bool = False, keyed: bool = False) -> Store:
    """The store the command works on. Only `add` and `import` may create it; and without a
    digest.toml and a --database, the command says which database it falls back to, or refuses
    where it would show a list made up out of nothing. `keyed`: with the signing keys, which
    recognise an erased address (add, import, erase, history)."""
    target = database or settings.database
    if settings.path is None and database is None:
        where = Path(target).resolve()
        if create:
            click.echo(f"digest: note: no digest.toml here and no -c: built-in defaults, subscribers in {where}", err=True)
        elif not where.is_file():
            raise UserError(f"no digest.toml here and no -c, and no database {where}: there is no subscriber list yet "
                            "(pass -c path/to/digest.toml or --database, or start one with "
                            "`digest subscribers import FILE.csv -c digest.toml`)")
    store = Store.open(target, create=create)
    return store.with_keys(*load_keys(settings.secret_file)) if keyed else store


def _known(settings: Settings) -> set[str]:
    return {r.key for r in settings.rubrics}


def _existing(store: Store, email: str) -> Subscriber:
    subscriber = store.get(normalise_email(email))
    if subscriber is None:
        raise UserError(f"{email} is not a subscriber (see `digest subscribers list`)")
    return subscriber


@contextmanager
def _utf8_stdout() -> Iterator[IO[str]]:
    """UTF-8 whatever the terminal's locale says: names are in Arabic and French."""
    stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="", write_through=True)
    try:
        yield stream
    finally:
        stream.detach()


@subscribers.command(context_settings=CONTEXT)
@click.argument("email")
@click.option("--name", default="", help="The name used in the greeting.")
@click.option("--locale", type=click.Choice(config.LOCALES), help="Language of the email (default: newsletter.locale).")
@click.option("--timezone", metavar="ZONE", help="IANA time zone, e.g. Africa/Casablanca (default: newsletter.timezone).")
@click.option("--rubric", "rubrics", multiple=True, metavar="KEY", help="A rubric to receive; repeat for several (default: all).")
@click.option("--hour", metavar="HH:MM|asap",
              help="When the edition reaches them, in their time zone: an hour, or asap as soon as it is out "
                   "(default: [delivery] local_time, the newsletter's hour).")
@click.option("--cadence", type=click.Choice(CADENCES, case_sensitive=False),
              help="How often: the daily edition (the default), or the weekly one.")
@click.option("--weekday", metavar="DAY",
              help="The weekly edition's day, in English or French (sunday, dimanche); default: [delivery] "
                   "weekly_day. Given without --cadence, it means weekly.")
@_store_options
def add(email: str, name: str, locale: str | None, timezone: str | None, rubrics: tuple[str, ...], hour: str | None,
        cadence: str | None, weekday: str | None, config_path: str | None, database: str | None) -> None:
    """Add one subscriber.

    \b
    Example:
      digest subscribers add salma@example.ma --name "Salma Alaoui" --rubric economie --rubric sport
      digest subscribers add omar@example.com --timezone Asia/Tokyo --hour 06:30
      digest subscribers add nadia@example.com --cadence weekly --weekday sunday
    """
    settings = _settings(config_path)
    chosen = check_rubrics([key for value in rubrics for key in split_rubrics(value)], _known(settings))
    normalise_email(email)  # before the database is created for nothing
    if hour is not None:
        check_delivery_time(hour)
    if weekday is not None:
        check_weekday(weekday)
    store = _open(settings, database, create=True, keyed=True)
    news = settings.newsletter
    subscriber = store.add(email, name=name, locale=locale or news.locale, timezone=timezone or news.timezone, rubrics=chosen,
                           by=Origin("cli", "digest subscribers add"), delivery_time=hour, cadence=cadence, weekday=weekday)
    click.echo(f"added {subscriber.email} (id {subscriber.id}, {subscriber.locale}, {subscriber.timezone}, "
               f"rubrics: {listing.rubrics(subscriber)}, hour: {listing.hour(subscriber, settings)}, "
               f"rhythm: {listing.rhythm(subscriber, settings)})")


@subscribers.command("import", context_settings=CONTEXT)
@click.argument("file")
@_store_options
def import_(file: str, config_path: str | None, database: str | None) -> None:
    """Add or update subscribers from a CSV file ('-' for standard input).

    \b
    Columns (header line required, any order, only email mandatory):
      email,name,locale,timezone,rubrics,status,created_at,delivery_time,cadence,weekday
    Rubrics are separated by ; or | or spaces. delivery_time is the hour the
    reader gets the edition in their time zone (07:30) or asap; empty: what
    they chose already, else the newsletter's hour ([delivery] local_time).
    cadence is daily or weekly; weekday the weekly edition's day in English
    or French (sunday, dimanche; alone, it means weekly; for a new reader
    without one, [delivery] weekly_day).
    Bad rows are listed by line (the first 100, then a count) and the good
    ones imported (exit code 1).
    Importing twice changes nothing; an unsubscribed, bounced or pending
    subscriber is never made active again, and an address erased at its
    reader's request is a bad row. One leading ' is taken off a cell when = +
    - @ or ' follows it: export writes it so that spreadsheets run no formulas.
    """
    settings = _settings(config_path)
    store = _open(settings, database, create=True, keyed=True)
    source: IO[bytes] | str = sys.stdin.buffer if file == "-" else file
    report = import_csv(store, source, _known(settings), settings.newsletter.locale, settings.newsletter.timezone,
                        Origin("import", f"digest subscribers import {file}"))
    click.echo(f"imported {file}: {report.created} created, {report.updated} updated, "
               f"{report.unchanged} unchanged, {report.bad} bad rows")
    lines = [(line, reason) for line, reason in report.errors] + [(line, f"warning: {r}") for line, r in report.warnings]
    for line, reason in sorted(lines):
        click.echo(f"line {line}: {reason}")
    if report.bad > len(report.errors):
        click.echo(f"… and {report.bad - len(report.errors)} more bad rows")
    if report.warned > len(report.warnings):
        click.echo(f"… and {report.warned - len(report.warnings)} more warnings")
    if report.bad:
        sys.exit(1)


@subscribers.command(context_settings=CONTEXT)
@click.argument("file", default="-", required=False)
@click.option("--status", type=click.Choice(STATUSES), help="Only subscribers with this status (default: all but pending).")
@click.option("--history", is_flag=True, help="Write the consent history instead: one row per change of a reader's state.")
@_store_options
def export(file: str, status: str | None, history: bool, config_path: str | None, database: str | None) -> None:
    """Write subscribers as CSV (UTF-8) to FILE, or to standard output ('-', the default).

    The file imports back into an empty database as the same subscribers
    (pending sign-ups, not confirmed, are left out unless --status pending). A
    cell a spreadsheet would run as a formula (starting with = + - @, a tab or
    a carriage return) is written with a leading ', which import takes off.
    With --history: email,at,event,channel,source,wording,network,user_agent,detail.
    """
    store = _open(_settings(config_path), database)
    if history and status:
        raise UserError("--history exports every change of every reader: it takes no --status")

    def write(out: IO[str]) -> int:
        return export_history(store, out) if history else export_csv(store, out, status)

    if file == "-":
        with _utf8_stdout() as out:
            write(out)
        return
    try:
        with open(file, "w", encoding="utf-8", newline="") as out:
            count = write(out)
    except OSError as exc:
        raise UserError(f"{file}: cannot write it: {exc.strerror}") from None
    click.echo(f"exported {count} {'changes' if history else 'subscribers'} to {file}", err=True)


@subscribers.command("list", context_settings=CONTEXT)
@click.option("--status", type=click.Choice(STATUSES), help="Only subscribers with this status (default: all).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="A table for people; CSV or JSON for programs.")
@_store_options
def list_(status: str | None, fmt: str, config_path: str | None, database: str | None) -> None:
    """List subscribers in the order they were added."""
    settings = _settings(config_path)
    store = _open(settings, database)
    with _utf8_stdout() as out:
        if fmt == "csv":
            count = export_csv(store, out, status)
        elif fmt == "json":
            count = listing.as_json(store.iter_subscribers(status), out)
        else:
            count = listing.table(store.iter_subscribers(status), out, settings)
    if fmt == "table":
        click.echo(f"{count} subscribers", err=True)


@subscribers.command(context_settings=CONTEXT)
@_store_options
def count(config_path: str | None, database: str | None) -> None:
    """How many subscribers, per status."""
    counts = _open(_settings(config_path), database).count()
    for status, n in counts.items():
        click.echo(f"{status:<14}{n:>8}")
    click.echo(f"{'total':<14}{sum(counts.values()):>8}")


@subscribers.command(context_settings=CONTEXT)
@click.argument("email")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_store_options
def remove(email: str, yes: bool, config_path: str | None, database: str | None) -> None:
    """Delete a subscriber and their delivery history (to stop sending, prefer unsubscribe)."""
    normalise_email(email)
    store = _open(_settings(config_path), database)
    subscriber = _existing(store, email)
    if not yes and not click.confirm(f"Remove {subscriber.email} and their delivery history?", default=False):
        click.echo("nothing removed")
        return
    store.remove(subscriber.email, by=Origin("cli", "digest subscribers remove"))
    click.echo(f"removed {subscriber.email}")


@subscribers.command(context_settings=CONTEXT)
@click.argument("email", required=False)
@click.option("--from-message", is_flag=True,
              help="Read an email on standard input (what a reader sends to newsletter.unsubscribe_mailto) "
                   "and unsubscribe by the signed token in its subject. Only the first 256 KiB are read "
                   "(the header must be within them); the rest is drained unread.")
@_store_options
def unsubscribe(email: str | None, from_message: bool, config_path: str | None, database: str | None) -> None:
    """Stop sending to a subscriber (kept on the list, so that an import cannot add them back).

    \b
    Wire the List-Unsubscribe mailto to it, e.g. a Postfix alias:
      unsubscribe: "|digest subscribers unsubscribe --from-message -c /etc/digest/digest.toml"
    """
    settings = _settings(config_path)
    if from_message == bool(email):
        raise UserError("give either EMAIL or --from-message")
    store = _open(settings, database)
    if email:  # one or the other, checked above
        normalise_email(email)
        subscriber = _existing(store, email)
        by = Origin("cli", "digest subscribers unsubscribe")
    else:
        subscriber = _from_message(read_piped(sys.stdin.buffer).head, store, settings)
        by = Origin("mailto", "digest subscribers unsubscribe --from-message")
    if store.unsubscribe(subscriber.id, by):
        click.echo(f"unsubscribed {subscriber.email}")
    else:
        click.echo(f"{subscriber.email} was already unsubscribed")


def _from_message(raw: bytes, store: Store, settings: Settings) -> Subscriber:
    """The subscriber a mailto unsubscribe message is about: the signed token its subject carries
    (the List-Unsubscribe mailto puts it there), which cannot be forged. ``raw`` comes from anyone:
    mailin reads it at bounded cost, never email.policy.default."""

    incoming = read_headers(raw)
    tokens = newsletter_tokens(settings.secret_file, settings.newsletter.list_id)
    # The token may stand alone or glued to what a mail app left of "%20": try each end of each run.
    for run in re.findall(r"[A-Za-z0-9_-]+", incoming.subject):
        for candidate in {run[:TOKEN_LENGTH], run[-TOKEN_LENGTH:]}:
            subscriber_id = tokens.verify(candidate) if len(candidate) == TOKEN_LENGTH else None
            if subscriber_id is not None:
                subscriber = store.get_by_id(subscriber_id)
                if subscriber is not None:
                    return subscriber
    # A From: address proves nothing (anyone can write anyone's): without a valid token, nothing changes.
    # Both are shown as repr: what a stranger wrote must not reach the terminal or a log unescaped.
    sender = repr(incoming.sender[:80]) if incoming.sender else "unknown"
    raise UserError(f"no valid unsubscribe token in the subject {incoming.subject[:80]!r} (from {sender}); "
                    "nothing changed. Unsubscribe by hand with: digest subscribers unsubscribe ADDRESS")


@subscribers.command(context_settings=CONTEXT)
@click.argument("email")
@_store_options
def reset(email: str, config_path: str | None, database: str | None) -> None:
    """Clear a reader's bounce state once their address works again: the soft-bounce score back to 0,
    and a bounced reader active again. Someone who unsubscribed (or complained) stays unsubscribed."""
    address = normalise_email(email)
    store = _open(_settings(config_path), database)
    was = store.reset_bounces(address, by=Origin("cli", "digest subscribers reset"))
    if was is None:
        raise UserError(f"{address} is not a subscriber (see `digest subscribers list`)")
    status, score = was
    if status == "bounced":
        click.echo(f"{address} is active again (was bounced; soft-bounce score {score:.2f} cleared)")
    else:
        click.echo(f"{address}: soft-bounce score {score:.2f} cleared; still {status}")


@subscribers.command(context_settings=CONTEXT)
@click.argument("email")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="A table for people; JSON for programs.")
@_store_options
def history(email: str, fmt: str, config_path: str | None, database: str | None) -> None:
    """Every change of a reader's state, oldest first: when, what, how, from which form
    or command, the consent wording's version, the client's network and user agent."""
    address = normalise_email(email)
    store = _open(_settings(config_path), database, keyed=True)
    events, erased = store.history(address), store.erased_at(address)
    if not events and erased is None:
        raise UserError(f"{address} has no history here (see `digest subscribers list`)")
    with _utf8_stdout() as out:
        if fmt == "json":
            out.write(json.dumps({"email": address, "erased_at": iso_utc(erased) if erased else None,
                                  "history": [e.as_json() for e in events]}, ensure_ascii=False, indent=2) + "\n")
        else:
            listing.history_table(events, out)
    if erased is not None:
        click.echo(f"{address} was erased at the reader's request on {iso_utc(erased)}: "
                   "only a keyed hash of the address is kept", err=True)


@subscribers.command(context_settings=CONTEXT)
@click.argument("email")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_store_options
def erase(email: str, yes: bool, config_path: str | None, database: str | None) -> None:
    """Erase a reader at their request (GDPR): their record, choices, delivery history and
    consent history are deleted; only a keyed hash of the address is kept, so that a later
    import does not add them back silently. Only they can subscribe again (the sign-up form)."""
    address = normalise_email(email)
    store = _open(_settings(config_path), database, keyed=True)
    if not yes and not click.confirm(f"Erase {address} and everything kept about them?", default=False):
        click.echo("nothing erased")
        return
    if store.erase(address, by=Origin("cli", "digest subscribers erase")):
        click.echo(f"erased {address}")
    else:
        click.echo(f"{address} was not on record; it is now marked as erased all the same")
