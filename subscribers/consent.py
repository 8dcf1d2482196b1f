"""Consent on record: who changed a reader's state, when, how and from where (one row per change), and
the keyed hash an erased address leaves behind. The store writes these rows itself, in the transaction
of the change, so that no path can forget them."""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select

from digest.core.errors import StoreError
from digest.core.text import clean_line
from subscribers.keyed import Hasher
from subscribers.schema import consent_events, erasures

# What happened to the reader (the event) …
EVENTS = ("signed_up", "confirmed", "imported", "added", "changed", "unsubscribed", "resubscribed", "bounced",
          "removed", "erased", "reset")
# … and how: the sign-up form, the preferences page, a mail app's one-click or mailto unsubscribe, an
# import, the command line, the delivery (a bounce, during the send or after it), a mailbox provider's
# feedback loop (a complaint), or a Python caller.
CHANNELS = ("form", "preferences", "one-click", "mailto", "import", "cli", "delivery", "feedback-loop", "api")
USER_AGENT_MAX = 300
SOURCE_MAX = 300
ERASED = "erased"  # the keyed hash's purpose


@dataclass(frozen=True)
class Origin:
    """How a change came: its channel, the form page or the command (`source`), the version of the
    consent wording shown, and the client's network and user agent where there was a client."""

    channel: str
    source: str = ""
    wording: str | None = None
    network: str | None = None
    user_agent: str | None = None

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r}")


API = Origin("api", "python")
DELIVERY = Origin("delivery", "digest send")  # a bounce, recorded by the delivery ledger


@dataclass(frozen=True)
class Event:
    """One row of a reader's history, as `digest subscribers history` and "download my data" show it."""

    at: datetime
    event: str
    channel: str
    source: str
    wording: str | None
    network: str | None
    user_agent: str | None
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat().replace("+00:00", "Z"), "event": self.event, "channel": self.channel,
                "source": self.source, "wording": self.wording, "network": self.network,
                "user_agent": self.user_agent, "detail": self.detail}


def network(address: str | None) -> str | None:
    """The client's network, never its address: 203.0.113.0/24 for IPv4, 2001:db8:1:2::/64 for IPv6
    (an IPv4-mapped IPv6 address counts as IPv4); None for no or no valid address."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def user_agent(value: str | None) -> str | None:
    """A user agent as it is kept: one printable line, at most USER_AGENT_MAX characters."""
    text = clean_line(value or "")
    text = "".join(c if c.isprintable() else "?" for c in text)[:USER_AGENT_MAX]
    return text or None


def row(email: str, event: str, by: Origin, at: datetime, detail: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The consent_events row of one change."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    return {"email": email, "at": at, "event": event, "channel": by.channel, "source": by.source[:SOURCE_MAX],
            "wording": by.wording, "network": by.network, "user_agent": user_agent(by.user_agent),
            "detail": json.dumps(dict(detail), ensure_ascii=False, sort_keys=True) if detail else None}


def record(conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
    rows = list(rows)
    if rows:
        conn.execute(insert(consent_events), rows)


def history(conn: Connection, email: str) -> list[Event]:
    query = select(consent_events).where(consent_events.c.email == email).order_by(consent_events.c.id)
    return [_event(r) for r in conn.execute(query)]


def page(conn: Connection, after: int, size: int) -> list[tuple[int, str, Event]]:
    """(row id, address, event) of the `size` rows after row id `after`, in id order."""
    query = select(consent_events).where(consent_events.c.id > after).order_by(consent_events.c.id).limit(size)
    return [(r.id, r.email, _event(r)) for r in conn.execute(query)]


def _event(r: Row[Any]) -> Event:
    return Event(at=_utc(r.at), event=r.event, channel=r.channel, source=r.source, wording=r.wording,
                 network=r.network, user_agent=r.user_agent, detail=json.loads(r.detail) if r.detail else {})


def forget(conn: Connection, emails: Iterable[str]) -> None:
    """Delete the history of these addresses (erased, or sign-ups never confirmed)."""
    emails = sorted(set(emails))
    for start in range(0, len(emails), 500):
        conn.execute(delete(consent_events).where(consent_events.c.email.in_(emails[start:start + 500])))


# -- erasure ----------------------------------------------------------------------------------------

def erased(conn: Connection, hasher: Hasher | None, emails: Iterable[str]) -> dict[str, datetime]:
    """Which of these addresses were erased, and when. Without the keys nothing can be recognised: if
    any address was ever erased, that is an error rather than a silent pass."""
    emails = sorted(set(emails))
    if not emails:
        return {}
    if hasher is None:
        if conn.execute(select(erasures.c.digest).limit(1)).first() is not None:
            raise StoreError("erased readers are on record, and this store was opened without the signing keys "
                             "that recognise them", "open it with the keys (Store.with_keys)")
        return {}
    found: dict[str, datetime] = {}
    by_digest = {digest: email for email in emails for digest in hasher.digests(ERASED, email)}
    keys = sorted(by_digest)
    for start in range(0, len(keys), 500):
        query = select(erasures.c.digest, erasures.c.erased_at).where(erasures.c.digest.in_(keys[start:start + 500]))
        for digest, at in conn.execute(query):
            found[by_digest[digest]] = _utc(at)
    return found


def mark_erased(conn: Connection, hasher: Hasher, email: str, channel: str, at: datetime) -> None:
    digest = hasher.digest(ERASED, email)
    conn.execute(delete(erasures).where(erasures.c.digest == digest))
    conn.execute(insert(erasures).values(digest=digest, version=hasher.current, erased_at=at, channel=channel))


def unmark_erased(conn: Connection, hasher: Hasher | None, email: str) -> None:
    """The reader came back by themselves (a confirmed sign-up): the erasure no longer stands."""
    if hasher is not None:
        conn.execute(delete(erasures).where(erasures.c.digest.in_(sorted(hasher.digests(ERASED, email)))))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
