"""Sign-ups from the form, double opt-in: a sign-up waits for its confirmation for CONFIRM_HOURS, within
limits that every `digest serve` process shares through the database.

    request   the limits taken (or the sign-up refused, nothing written), then: a new address becomes a
              pending reader; a pending, unsubscribed or bounced one gets a new sign-up to confirm (their
              status stays as it is until then); an active one gets nothing. Each writes "signed_up".
    confirm   the sign-up used once: the reader becomes active with the choices it asked for (language,
              rubrics, cadence and weekday) ("confirmed")
    purge     expired sign-ups go, and so do the pending readers they leave, with their history

The limits count confirmation emails per address per day, per client network per hour and per recipient
domain per hour, in fixed windows. Each counter's key is a keyed hash (subscribers.keyed) of what it
counts, so the table names no address and no network. A refused request rolls its counts back.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, delete, exists, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from subscribers import consent
from subscribers.consent import Origin
from subscribers.keyed import Hasher
from subscribers.schema import signup_counters, signups, subscribers

CONFIRM_HOURS = 48
HOUR, DAY = 3600, 86400
LIMIT = "signup-limit"  # the keyed hash's purpose


@dataclass(frozen=True)
class Limits:
    per_address_per_day: int = 3
    per_network_per_hour: int = 20
    per_domain_per_hour: int = 100


@dataclass(frozen=True)
class Request:
    """A sign-up form, checked: the address normalised, the name one clean line, choices known."""

    email: str
    name: str
    locale: str
    rubrics: frozenset[str]
    timezone: str  # the newsletter's: the form does not ask
    wording: str  # the version of the consent text the form showed
    network: str | None  # the client's network (consent.network), counted per hour
    cadence: str = "daily"  # daily, weekly
    weekday: int | None = None  # 0 Monday … 6 Sunday; None: the newsroom's weekly_day


@dataclass(frozen=True)
class Requested:
    """What a request came to: "confirm" (send sign-up `signup_id`'s confirmation), "active" (nothing to
    send: they are subscribed already), or "limited" (refused by the limit `limit`, nothing written)."""

    outcome: Literal["confirm", "active", "limited"]
    signup_id: int | None = None
    expires_at: datetime | None = None
    limit: str | None = None


@dataclass(frozen=True)
class Pending:
    """A sign-up waiting for its confirmation, as the confirmation page needs it."""

    id: int
    subscriber_id: int
    email: str
    locale: str
    expires_at: datetime


class Limited(Exception):
    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


def request(conn: Connection, hasher: Hasher, form: Request, by: Origin, limits: Limits, at: datetime) -> Requested:
    """See the module's docstring; raises Limited (the caller rolls the transaction back)."""
    _take(conn, hasher, form, limits, at)
    found = conn.execute(select(subscribers.c.id, subscribers.c.status).where(subscribers.c.email == form.email)).first()
    choices: dict[str, Any] = {"locale": form.locale, "rubrics": ",".join(sorted(form.rubrics))}
    rhythm = {"cadence": form.cadence, "weekday": form.weekday}
    if found is not None and found.status == "active":
        consent.record(conn, [consent.row(form.email, "signed_up", by, at, {"already": "active"})])
        return Requested("active")
    if found is None:
        key = conn.execute(insert(subscribers).values(
            email=form.email, name=form.name, locale=form.locale, timezone=form.timezone,
            rubrics=choices["rubrics"], status="pending", created_at=at, updated_at=at, **rhythm)).inserted_primary_key
        assert key is not None
        subscriber_id = key[0]
    else:
        subscriber_id = found.id
        conn.execute(delete(signups).where(signups.c.subscriber_id == subscriber_id))  # the newest sign-up wins
    expires = at + timedelta(hours=CONFIRM_HOURS)
    key = conn.execute(insert(signups).values(
        subscriber_id=subscriber_id, name=form.name, locale=form.locale, rubrics=choices["rubrics"],
        wording=form.wording, requested_at=at, expires_at=expires, **rhythm)).inserted_primary_key
    assert key is not None
    consent.record(conn, [consent.row(form.email, "signed_up", by, at, {**choices, **_given(rhythm)})])
    return Requested("confirm", key[0], expires)


def pending(conn: Connection, signup_id: int, at: datetime) -> Pending | None:
    query = (select(signups.c.id, signups.c.subscriber_id, subscribers.c.email, signups.c.locale, signups.c.expires_at)
             .join(subscribers, subscribers.c.id == signups.c.subscriber_id)
             .where(signups.c.id == signup_id, signups.c.expires_at > at))
    row = conn.execute(query).first()
    return Pending(row.id, row.subscriber_id, row.email, row.locale, _utc(row.expires_at)) if row else None


def confirm(conn: Connection, hasher: Hasher | None, signup_id: int, by: Origin, at: datetime) -> int | None:
    """The confirmed reader's id; None when the sign-up is used, expired or unknown (a replay changes nothing)."""
    # Deleting it is what uses it: of two confirmations at once, one deletes the row and the other finds
    # none. A write first, too, so that SQLite takes its write lock at once rather than upgrading a read.
    used = delete(signups).where(signups.c.id == signup_id, signups.c.expires_at > at).returning(*signups.c)
    row = conn.execute(used).first()
    if row is None:
        return None
    conn.execute(delete(signups).where(signups.c.subscriber_id == row.subscriber_id))
    reader = conn.execute(select(subscribers.c.email, subscribers.c.status)
                          .where(subscribers.c.id == row.subscriber_id)).first()
    if reader is None:
        return None
    rhythm = {"cadence": row.cadence, "weekday": row.weekday}
    values: dict[str, Any] = {"status": "active", "locale": row.locale, "rubrics": row.rubrics, "updated_at": at, **rhythm}
    if row.name:
        values["name"] = row.name
    conn.execute(update(subscribers).where(subscribers.c.id == row.subscriber_id).values(values))
    consent.unmark_erased(conn, hasher, reader.email)
    detail = {"locale": row.locale, "rubrics": row.rubrics, **_given(rhythm), "was": reader.status,
              "signed_up_at": _iso(row.requested_at)}
    consent.record(conn, [consent.row(reader.email, "confirmed", Origin(by.channel, by.source, row.wording, by.network,
                                                                        by.user_agent), at, detail)])
    return int(row.subscriber_id)


def purge(conn: Connection, at: datetime) -> int:
    """See the module's docstring; how many pending readers were removed."""
    conn.execute(delete(signups).where(signups.c.expires_at <= at))
    conn.execute(delete(signup_counters).where(signup_counters.c.expires_at <= at))
    waiting = exists().where(signups.c.subscriber_id == subscribers.c.id)
    left = conn.execute(select(subscribers.c.id, subscribers.c.email)
                        .where(subscribers.c.status == "pending", ~waiting)).all()
    ids = [row.id for row in left]
    for start in range(0, len(ids), 500):
        conn.execute(delete(subscribers).where(subscribers.c.id.in_(ids[start:start + 500]),
                                               subscribers.c.status == "pending"))
    consent.forget(conn, [row.email for row in left])
    return len(left)


def _take(conn: Connection, hasher: Hasher, form: Request, limits: Limits, at: datetime) -> None:
    """Count this confirmation against each limit; Limited names the first one it would pass."""
    rules = [("address", form.email, limits.per_address_per_day, DAY),
             ("domain", form.email.rpartition("@")[2], limits.per_domain_per_hour, HOUR)]
    if form.network:
        rules.append(("network", form.network, limits.per_network_per_hour, HOUR))
    for rule, value, limit, period in rules:
        window = int(at.timestamp() // period)
        key = f"{rule[0]}:{hasher.digest(LIMIT, value)[:40]}:{window}"
        if _increment(conn, key, datetime.fromtimestamp((window + 1) * period, UTC)) > limit:
            raise Limited(rule)


def _increment(conn: Connection, key: str, expires: datetime) -> int:
    """Add one to a counter, made at 1 if it is not there, in one statement (the row is then locked
    until the transaction ends, so two processes count one after the other)."""
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        upsert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(signup_counters)
        conn.execute(upsert.values(key=key, count=1, expires_at=expires).on_conflict_do_update(
            index_elements=[signup_counters.c.key], set_={"count": signup_counters.c.count + 1}))
    elif conn.execute(update(signup_counters).where(signup_counters.c.key == key)
                      .values(count=signup_counters.c.count + 1)).rowcount == 0:
        conn.execute(insert(signup_counters).values(key=key, count=1, expires_at=expires))
    return int(conn.execute(select(signup_counters.c.count).where(signup_counters.c.key == key)).scalar_one())


def _given(rhythm: dict[str, Any]) -> dict[str, Any]:
    """The rhythm as a consent row says it: the cadence, and the day when one was chosen."""
    return {name: value for name, value in rhythm.items() if value is not None}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return _utc(value).isoformat().replace("+00:00", "Z")
