"""`digest bounces fetch`: the bounce mailbox over IMAP (imaplib). Each message is read without being
marked seen (BODY.PEEK, its first MESSAGE_MAX bytes only), taken in, and moved to the processed folder
when it was ours; anything else (no valid tag, no bounce we know) is left exactly where it was,
unread, for a person. Nothing is ever deleted but by MOVE (or COPY, then expunging that one message by
its UID with UIDPLUS), never by a mailbox-wide EXPUNGE that could take others' deleted mail with it.
"""
from __future__ import annotations

import imaplib
import re
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from digest.core.config import Bounces
from digest.core.errors import MailboxError
from digest.delivery.bounces.ledger import Taken
from digest.delivery.bounces.reading import MESSAGE_MAX, Incoming

TIMEOUT_SECONDS = 60.0
BATCH_MAX = 5000  # messages looked at in one run; the next run takes the rest
_UID = re.compile(rb"\bUID (\d+)")


def fetch(bounces: Bounces, take: Callable[[Incoming], Taken], on_taken: Callable[[Taken], None]) -> list[Taken]:
    """Take in every message of the mailbox; what was processed is moved to `imap_processed`."""
    taken: list[Taken] = []
    with _session(bounces) as client:
        _check(client.select(_quoted(bounces.imap_mailbox)), f"cannot open the folder {bounces.imap_mailbox!r}")
        _ensure_folder(client, bounces.imap_processed)
        capabilities = _capabilities(client)
        status, data = client.uid("SEARCH", "ALL")
        _check((status, data), "cannot list the messages")
        for uid in (data[0] or b"").split()[:BATCH_MAX]:
            raw = _peek(client, uid)
            if raw is None:
                continue  # expunged meanwhile by another client
            result = take(Incoming(raw, f"imap:{bounces.imap_mailbox}/{uid.decode()}"))
            if result.processed:
                _move(client, capabilities, uid, bounces.imap_processed)
            taken.append(result)
            on_taken(result)
    return taken


@contextmanager
def _session(bounces: Bounces) -> Iterator[imaplib.IMAP4]:
    host, port = bounces.imap_host or "", bounces.imap_port
    where = f"IMAP server {host}:{port}"
    try:
        if bounces.imap_tls == "implicit":
            client: imaplib.IMAP4 = imaplib.IMAP4_SSL(host, port, ssl_context=ssl.create_default_context(),
                                                      timeout=TIMEOUT_SECONDS)
        else:
            client = imaplib.IMAP4(host, port, timeout=TIMEOUT_SECONDS)
            if bounces.imap_tls == "starttls":
                client.starttls(ssl.create_default_context())
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxError(f"cannot reach the {where}: {exc}", "check [bounces] imap_host, imap_port and imap_tls") from None
    try:
        try:
            client.login(bounces.imap_username or "", bounces.resolve_password())
        except imaplib.IMAP4.error:
            raise MailboxError(f"the {where} refused the login of {bounces.imap_username!r}",
                               "check [bounces] imap_username and the password") from None
        yield client
    except (OSError, imaplib.IMAP4.error) as exc:  # .abort (gone away) is an .error too
        raise MailboxError(f"the {where} failed: {exc}", "run `digest bounces fetch` again: what was "
                           "taken in is recorded, and reading it again changes nothing") from None
    finally:
        try:
            client.logout()
        except (OSError, imaplib.IMAP4.error):
            client.shutdown()


def _peek(client: imaplib.IMAP4, uid: bytes) -> bytes | None:
    status, data = client.uid("FETCH", uid.decode(), f"(BODY.PEEK[]<0.{MESSAGE_MAX}>)")
    _check((status, data), f"cannot read message {uid.decode()}")
    for item in data:
        if isinstance(item, tuple) and _UID.search(item[0]) and isinstance(item[1], bytes):
            return item[1]
    return None


def _capabilities(client: imaplib.IMAP4) -> set[str]:
    """What the server offers once logged in (the greeting's list may leave out MOVE and UIDPLUS)."""
    status, data = client.capability()
    _check((status, data), "cannot ask for the capabilities")
    return {c.upper() for c in b" ".join(d for d in data if isinstance(d, bytes)).decode("ascii", "replace").split()}


def _move(client: imaplib.IMAP4, capabilities: set[str], uid: bytes, folder: str) -> None:
    target = _quoted(folder)
    if "MOVE" in capabilities:
        _check(client.uid("MOVE", uid.decode(), target), f"cannot move message {uid.decode()} to {folder!r}")
    elif "UIDPLUS" in capabilities:
        _check(client.uid("COPY", uid.decode(), target), f"cannot copy message {uid.decode()} to {folder!r}")
        _check(client.uid("STORE", uid.decode(), "+FLAGS.SILENT", r"(\Deleted)"), "cannot flag a copied message")
        _check(client.uid("EXPUNGE", uid.decode()), "cannot remove a copied message")
    else:
        raise MailboxError("the IMAP server offers neither MOVE nor UIDPLUS: processed mail cannot be moved "
                           "without touching other mail", "use a server with MOVE (RFC 6851), such as Dovecot")


def _ensure_folder(client: imaplib.IMAP4, folder: str) -> None:
    status, data = client.list('""', _quoted(folder))
    if status == "OK" and any(item for item in data if item):
        return
    _check(client.create(_quoted(folder)), f"cannot create the folder {folder!r}",
           "create it by hand, or name another in [bounces] imap_processed")


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(reply: tuple[str, list], what: str, hint: str | None = None) -> None:
    status, data = reply
    if status != "OK":
        said = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")[:200]
        raise MailboxError(f"IMAP: {what}: {said}", hint)
