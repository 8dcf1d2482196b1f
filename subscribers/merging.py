"""Many rows merged into the list a page at a time (imports of 200,000 rows, a preferences form): what a
row gives, what it may change (consent first), and the consent row of each change."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal, NamedTuple

from sqlalchemy import Connection, bindparam, select
from sqlalchemy import exc as sa_exc

from digest.core.errors import InvalidSubscriber
from subscribers import consent
from subscribers.consent import Origin
from subscribers.keyed import Hasher
from subscribers.model import NEWSLETTER_HOUR, NEWSROOM_DAY
from subscribers.rows import as_utc, join_rubrics, now
from subscribers.schema import subscribers
from subscribers.validate import Fields

Outcome = Literal["created", "updated", "unchanged", "erased"]
# The consent event a change of status is recorded as.
STATUS_EVENTS = {"unsubscribed": "unsubscribed", "bounced": "bounced", "active": "resubscribed"}


class Upserted(NamedTuple):
    """What `Store.upsert` did; ``kept_status`` is set when a row asked to re-activate someone who left.
    "erased": the address was erased at the reader's request, and nothing was written."""

    outcome: Outcome
    kept_status: str | None = None


DEFAULTS = {"name": "", "locale": "fr", "timezone": "UTC", "rubrics": "", "status": "active", "delivery_time": None,
            "cadence": "daily", "weekday": None}
FIELDS = tuple(DEFAULTS)
PAGE = 500  # addresses per IN (…) lookup: well under SQLite's limit on bound parameters
_UPDATE = (
    subscribers.update()
    .where(subscribers.c.email == bindparam("_email"))
    .values({name: bindparam(f"_{name}") for name in (*FIELDS, "updated_at")})
)


def pages(rows: Iterable[Fields], size: int) -> Iterator[list[Fields]]:
    page: list[Fields] = []
    for row in rows:
        page.append(row)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def fields_given(fields: Fields) -> dict[str, Any]:
    """The columns a row gives, as stored (None on a Fields is "not given")."""
    given = {name: getattr(fields, name) for name in FIELDS if getattr(fields, name) is not None}
    if fields.rubrics is not None:
        given["rubrics"] = join_rubrics(fields.rubrics)
    if fields.delivery_time == NEWSLETTER_HOUR:
        given["delivery_time"] = None  # given: back to the newsletter's hour
    if fields.weekday == NEWSROOM_DAY:
        given["weekday"] = None  # given: back to the newsroom's weekly day
    return given


def merge_page(conn: Connection, page: list[Fields], defaults: dict[str, Any], by: Origin,
                hasher: Hasher | None) -> list[Upserted]:
    """One lookup for the page, one executemany for its inserts, one for its updates, one for its consent rows."""
    query = select(subscribers.c.email, *(subscribers.c[name] for name in FIELDS))
    emails = sorted({f.email for f in page})
    found = conn.execute(query.where(subscribers.c.email.in_(emails))).all()
    current = {row.email: {name: getattr(row, name) for name in FIELDS} for row in found}
    gone = consent.erased(conn, hasher, [email for email in emails if email not in current])
    inserts: dict[str, dict[str, Any]] = {}
    updates: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    results = []
    stamp = now()
    for fields in page:
        given = fields_given(fields)
        not_pending(given.get("status", ""))
        before = current.get(fields.email)
        if before is None and fields.email in gone:
            results.append(Upserted("erased"))
            continue
        if before is None:
            row = {**defaults, **given}
            current[fields.email] = row
            inserts[fields.email] = {**row, "email": fields.email, "updated_at": stamp,
                                     "created_at": as_utc(fields.created_at) if fields.created_at else stamp}
            events.append(consent.row(fields.email, "imported" if by.channel == "import" else "added", by, stamp,
                                      detail({name: value for name, value in row.items() if value is not None})))
            results.append(Upserted("created"))
            continue
        kept = None
        if given.get("status") == "active" and before["status"] != "active":
            kept = before["status"]
            del given["status"]
        changes = {name: value for name, value in given.items() if before[name] != value}
        if not changes:
            results.append(Upserted("unchanged", kept))
            continue
        before.update(changes)
        if fields.email in inserts:  # the same address twice in one page: the insert takes the last word
            inserts[fields.email].update(changes)
        else:
            updates[fields.email] = {f"_{name}": value for name, value in before.items()}
            updates[fields.email].update(_email=fields.email, _updated_at=stamp)
        event = STATUS_EVENTS.get(changes.get("status", ""), "changed")
        events.append(consent.row(fields.email, event, by, stamp, detail(changes)))
        results.append(Upserted("updated", kept))
    try:
        if inserts:
            conn.execute(subscribers.insert(), list(inserts.values()))
        if updates:
            conn.execute(_UPDATE, list(updates.values()))
    except sa_exc.IntegrityError:
        raise InvalidSubscriber("an address was added by someone else during this import", "run it again") from None
    consent.record(conn, events)
    return results


def detail(values: Mapping[str, Any]) -> dict[str, Any]:
    """What a consent row says of changed fields: their new values, but never a name (only that it changed)."""
    return {name: ("(changed)" if name == "name" else value) for name, value in values.items()}


def not_pending(status: str) -> str:
    if status == "pending":
        raise InvalidSubscriber("status pending is the sign-up form's: a reader is pending only until they confirm",
                                "use active, unsubscribed or bounced")
    return status
