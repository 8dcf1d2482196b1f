"""`digest bounces read` and `digest bounces fetch`: bounces and complaints that come back after the
send, from a pipe, files and mailboxes, or an IMAP folder. Parses, calls digest.delivery.bounces,
prints one line per message."""
from __future__ import annotations

import mailbox
import sys
from pathlib import Path

import click
from sqlalchemy.exc import OperationalError

from digest.cli.options import (
    CONTEXT,
    DigestGroup,
    UserError,
    config_option,
    database_option,
    echo_error,
    load_settings,
    need_config,
    now_option,
)
from digest.core.clock import clock_from
from digest.core.config import Bounces, Settings
from digest.core.errors import ConfigError
from digest.delivery.bounces import imap
from digest.delivery.bounces.ledger import RECORDED, UNATTRIBUTED, UNRECOGNISED, BounceLedger, Taken
from digest.delivery.bounces.reading import from_paths, from_stream
from subscribers.store import Store
from subscribers.tokens import newsletter_tokens

# sysexits.h: an MTA that pipes a message to us keeps it and tries again later on this code.
EX_TEMPFAIL = 75


@click.group("bounces", cls=DigestGroup, context_settings=CONTEXT)
def bounces() -> None:
    """Bounces and complaints that arrive after the send (needs a [bounces] table).

    \b
    digest bounces read -            one message on standard input (an MTA alias or pipe)
    digest bounces read PATH...      files, Maildir folders, mbox files
    digest bounces fetch             the IMAP mailbox of [bounces]

    Each message is attributed by the signed tag of its return path (or of its X-Digest-ID header, which
    feedback loops keep); one without a valid tag changes nothing. A hard bounce bounces the reader, soft
    ones add to a score that fades, a complaint unsubscribes the reader; reading a message twice changes
    nothing. `digest report` shows what each edition came to.
    """


def _ledger(config_path: str | None, database: str | None, now: str | None, command: str) -> tuple[Settings, BounceLedger]:
    settings = load_settings(config_path, database=database)
    need_config(settings, "bounces", "the [bounces] table, the list id and the signing keys come from it")
    if settings.bounces is None:
        raise ConfigError(f"{settings.path}: there is no [bounces] table",
                          "add one with the domain of the return path (see the README's \"Bounces and complaints\")")
    store = Store.open(settings.database, create=False)
    return settings, BounceLedger(settings.bounces, store, newsletter_tokens(settings.secret_file, settings.newsletter.list_id),
                                  clock_from(now), command)


def _say(taken: Taken) -> None:
    """One line per message; a stranger's words (the diagnostic) are shown escaped."""
    where = taken.source
    if taken.outcome == RECORDED and taken.finding is not None and taken.tagged is not None:
        finding = taken.finding
        words = [f"{where}: {taken.email}: {finding.kind}", finding.status or "",
                 repr(finding.diagnostic[:120]) if finding.diagnostic else "", f"[{taken.tagged.edition}]",
                 f"→ {taken.change}" if taken.change else "",
                 f"(score {taken.score:.2f})" if taken.score is not None else ""]
        click.echo(" ".join(w for w in words if w))
    elif taken.outcome == "again":
        click.echo(f"{where}: {taken.email}: read before, nothing changed")
    elif taken.outcome == "gone":
        click.echo(f"{where}: its reader is no longer on the list, nothing changed")
    elif taken.outcome == "unrecognised":
        click.echo(f"{where}: left: ours, but neither a bounce, a complaint nor an auto-reply")
    else:
        click.echo(f"{where}: left: no valid return-path tag, not ours to act on")


@bounces.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, metavar="-|PATH...")
@config_option
@database_option
@now_option
def read(paths: tuple[str, ...], config_path: str | None, database: str | None, now: str | None) -> None:
    """Take in bounces and complaints: `-` reads one message on standard input (wire the bounce
    domain's mail to it), PATHs are message files, Maildir folders or mbox files.

    \b
    Postfix: /etc/aliases  bounces: "|digest bounces read - -c /etc/digest/digest.toml"
    Only the first 512 KiB of a message are kept (the rest is drained unread). Exit 0 when each
    message was taken in or left; 75 (try again later) when the database cannot be written, so that
    the MTA keeps the message.
    """
    piped = paths == ("-",)
    if "-" in paths and not piped:
        raise UserError("read either - (one message on standard input) or PATHs, not both")
    settings, ledger = _ledger(config_path, database, now, "digest bounces read")
    try:
        if piped:
            incoming = from_stream(sys.stdin.buffer)
            taken = ledger.take(incoming)
            _say(taken)
            keep = settings.bounces.keep_unattributed if settings.bounces else None
            if keep is not None and taken.outcome in (UNATTRIBUTED, UNRECOGNISED):
                _keep(keep, incoming.raw)
            return
        missing = [p for p in paths if not Path(p).exists()]
        if missing:
            raise UserError(f"no such file or folder: {missing[0]}")
        try:
            for incoming in from_paths(Path(p) for p in paths):
                _say(ledger.take(incoming))
        except FileNotFoundError as exc:
            raise UserError(str(exc)) from None
    except OperationalError as exc:
        echo_error("error", f"database error: {str(exc.orig).splitlines()[0]}; nothing more was taken in")
        sys.exit(EX_TEMPFAIL if piped else 1)
    finally:
        ledger.store.close()


def _keep(folder: Path, data: bytes) -> None:
    """A message that was not ours, kept for a person in a Maildir (made if missing): delivered
    atomically, as Maildir's tmp/ then new/ promises, so a reader of the folder never sees half of one."""
    try:
        mailbox.Maildir(folder, create=True).add(data)
    except OSError as exc:
        echo_error("error", f"{folder}: cannot keep the message there: {exc.strerror}")
        sys.exit(EX_TEMPFAIL)  # the MTA keeps it and tries again
    click.echo(f"  kept in {folder} for a person")


@bounces.command(context_settings=CONTEXT)
@config_option
@database_option
@now_option
def fetch(config_path: str | None, database: str | None, now: str | None) -> None:
    """Take in the IMAP mailbox of [bounces] (imap_host …, the password from imap_password_env or
    imap_password_file): what was ours is moved to imap_processed; anything else is left where it
    was, unread. Run it from a timer."""
    settings, ledger = _ledger(config_path, database, now, "digest bounces fetch")
    config: Bounces | None = settings.bounces
    try:
        if config is None or not config.imap_host:
            raise ConfigError(f"{settings.path}: [bounces] has no imap_host", "set imap_host, imap_username and a password")
        taken = imap.fetch(config, ledger.take, _say)
    finally:
        ledger.store.close()
    moved = sum(t.processed for t in taken)
    click.echo(f"{len(taken)} messages: {moved} taken in and moved to {config.imap_processed!r}, {len(taken) - moved} left")
