"""What a valid subscriber field is: address, name, locale, time zone, rubrics, status, delivery time,
cadence and weekday; and the error when not."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from digest.core.config.model import WEEKDAYS
from digest.core.errors import InvalidSubscriber
from digest.core.locales import LOCALES, hour, language, zone
from subscribers.model import ASAP, CADENCES, NEWSLETTER_HOUR, NEWSROOM_DAY, STATUSES

NAME_MAX = 200
RUBRIC_KEY = re.compile(r"[a-z0-9][a-z0-9_-]*")
JOURS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")


def normalise_email(raw: str) -> str:
    """The address as stored and sent: ASCII, lowercased, the domain as an IDNA A-label.

    The local part is lowercased too: RFC 5321 lets a server treat case as significant, but no
    mailbox provider does, and two rows for Amine@ and amine@ would send the edition twice.
    """
    if not isinstance(raw, str):
        raise InvalidSubscriber(f"invalid address {raw!r}: not text")
    if "\r" in raw or "\n" in raw:
        # A line break in an address is a header-injection attempt, never a typo worth repairing.
        raise InvalidSubscriber(f"invalid address {raw!r}: it contains a line break")
    address = raw.strip(" \t")
    if not address:
        raise InvalidSubscriber("missing address")
    if "," in address:
        raise InvalidSubscriber(f"invalid address {address!r}: it contains a comma (one address per row)")
    local, _, domain = address.rpartition("@")
    if PLAIN_LOCAL.fullmatch(local):
        known = checked_domain(domain)
        if known is not None and len(local) + 1 + known.longest <= EMAIL_MAX:
            return f"{local}@{known.ascii}".lower()
    return _validated(address)


def _validated(address: str) -> str:
    """The whole address through email-validator, as given: every address the shortcut above does
    not vouch for, and every message a bad address gets."""
    from email_validator import EmailNotValidError  # noqa: PLC0415 — 50 ms of imports a worker never needs

    try:
        # No SMTPUTF8: Python would write a non-ASCII local part as an encoded word, which breaks it.
        checked = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidSubscriber(f"invalid address {address!r}: {_short(str(exc))}") from None
    if checked.ascii_email is None:  # only for an address that needs SMTPUTF8, refused above already
        raise InvalidSubscriber(f"invalid address {address!r}: it has no ASCII form")
    return checked.ascii_email.lower()


# The shortcut for the common address, equivalent to _validated (tests/test_subscribers_csv_stream.py):
# email-validator checks the local part and the domain apart (a dot-atom local part of ASCII is
# valid as it is; the domain's check, 4/5 of the cost, depends on the domain alone), then the
# address's length in three forms (as given, normalised, with the A-label), each at most 254 bytes.
# So a local part of letters, digits, _ + - and single dots (a subset of RFC 5322's dot-atom) on a
# domain email-validator accepted once in "x@domain" is valid, with that domain's A-label, when it
# fits the longest of the domain's three forms. Anything else, and every error, goes through
# _validated: the same messages as before.
PLAIN_LOCAL = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*")
EMAIL_MAX = 254  # bytes: RFC 5321's path less its angle brackets, email-validator's limit
DOMAINS_KEPT = 50_000  # a list's distinct domains: the big providers and a long tail


class Domain(NamedTuple):
    ascii: str  # the A-label form, as email-validator gives it
    longest: int  # UTF-8 bytes of the longest of its forms: as given, Unicode, A-label


@lru_cache(maxsize=DOMAINS_KEPT)
def checked_domain(domain: str) -> Domain | None:
    """The domain as email-validator checks it in an address ("x@domain"), once per domain; None when
    it is not valid (the row then goes through _validated for its message)."""
    from email_validator import EmailNotValidError  # noqa: PLC0415

    try:
        checked = validate_email(f"x@{domain}", check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    forms = (domain, checked.domain, checked.ascii_domain)
    return Domain(checked.ascii_domain, max(len(form.encode("utf-8")) for form in forms))


def validate_email(address: str, **options: Any) -> Any:
    """email-validator's check, its module loaded on first use (50 ms of imports a worker never needs)."""
    from email_validator import validate_email as check  # noqa: PLC0415

    return check(address, **options)


def _short(message: str) -> str:
    return message.rstrip(".").replace("The email address", "it").replace("the @-sign", "the @")


def clean_name(raw: str | None) -> str:
    """One line of at most 200 characters: whitespace (CR/LF too) collapsed, control characters dropped."""
    if not raw:
        return ""
    # Control characters (Cc) would reach a From-like display name; format marks (Cf) stay, Arabic needs them.
    # A printable name has none (isprintable is false for every Cc): the character walk is for the others.
    visible = raw if raw.isprintable() else "".join(" " if unicodedata.category(c) == "Cc" else c for c in raw)
    return " ".join(visible.split())[:NAME_MAX].rstrip()


def check_locale(raw: str) -> str:
    """fr, en or ar; a regional form such as fr-MA or FR_ma is read as its language."""
    locale = language(raw)
    if locale is None:
        raise InvalidSubscriber(f"unknown locale {raw!r}", f"use one of {', '.join(LOCALES)}")
    return locale


def check_timezone(raw: str) -> str:
    """An IANA time zone name, returned in its canonical spelling (africa/casablanca → Africa/Casablanca)."""
    canonical = zone(raw)
    if canonical is None:
        raise InvalidSubscriber(f"unknown time zone {raw!r}", "use an IANA name such as Africa/Casablanca")
    return canonical


def check_status(raw: str) -> str:
    status = (raw or "").strip().lower()
    if status not in STATUSES:
        raise InvalidSubscriber(f"unknown status {raw!r}", f"use one of {', '.join(STATUSES)}")
    return status


def check_delivery_time(raw: str) -> str:
    """When the reader wants the edition: "HH:MM" where they live (7:30 is read as 07:30), ASAP, or
    NEWSLETTER_HOUR (empty: the newsletter's own hour)."""
    value = (raw or "").strip().lower()
    if value in (ASAP, NEWSLETTER_HOUR):
        return value
    canonical = hour(value)
    if canonical is None:
        raise InvalidSubscriber(f"invalid delivery time {raw!r}", f"use an hour from 00:00 to 23:59 such as 07:00, or {ASAP}")
    return canonical


def check_cadence(raw: str) -> str:
    """daily or weekly, any case."""
    cadence = (raw or "").strip().lower()
    if cadence not in CADENCES:
        raise InvalidSubscriber(f"unknown cadence {raw!r}", f"use one of {', '.join(CADENCES)}")
    return cadence


def check_weekday(raw: str) -> int:
    """A day of the week by its full name in English or French, any case (Sunday, DIMANCHE), as 0
    (Monday) … 6 (Sunday)."""
    name = (raw or "").strip().lower()
    for names in (WEEKDAYS, JOURS):
        if name in names:
            return names.index(name)
    raise InvalidSubscriber(f"unknown weekday {raw!r}", "use a day's full name in English or French, such as "
                            "sunday or dimanche")


def weekday_name(day: int | None) -> str:
    """A stored weekday as export writes it (sunday), "" for none: check_weekday reads it back."""
    return "" if day is None else WEEKDAYS[day]


def split_rubrics(raw: str) -> list[str]:
    """Rubric keys as a person types them in one cell: separated by ; | , or spaces."""
    return [key for key in re.split(r"[;|,\s]+", raw or "") if key]


def check_rubrics(keys: Iterable[str], known: set[str] | None = None) -> frozenset[str]:
    """The chosen rubric keys; with ``known``, each must be one of them (None: the format is checked only)."""
    chosen = set()
    for raw in keys:
        key = raw.strip().lower()
        if not key:
            continue
        if not RUBRIC_KEY.fullmatch(key) or (known is not None and key not in known):
            hint = f"known rubrics: {', '.join(sorted(known))}" if known else None
            raise InvalidSubscriber(f"unknown rubric {raw.strip()!r}", hint)
        chosen.add(key)
    return frozenset(chosen)


@dataclass(slots=True)
class Fields:
    """A subscriber's fields after the checks above, as an import or a form gives them; None: not given.
    Not frozen, but never changed once made: a frozen dataclass's __init__ costs 3 µs more, a second of
    each million rows imported."""

    email: str
    name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    rubrics: frozenset[str] | None = None
    status: str | None = None
    created_at: datetime | None = None
    delivery_time: str | None = None  # NEWSLETTER_HOUR: back to the newsletter's hour
    cadence: str | None = None
    weekday: int | None = None  # NEWSROOM_DAY: back to the newsroom's weekly day

    def __post_init__(self) -> None:
        # A day given without a cadence says "weekly, on that day"; with "daily" it is kept for later.
        if self.cadence is None and self.weekday is not None and self.weekday != NEWSROOM_DAY:
            self.cadence = "weekly"


def check_fields(
    email: str,
    name: str | None = None,
    locale: str | None = None,
    timezone: str | None = None,
    rubrics: Iterable[str] | None = None,
    status: str | None = None,
    created_at: datetime | None = None,
    known: set[str] | None = None,
    delivery_time: str | None = None,
    cadence: str | None = None,
    weekday: str | None = None,
) -> Fields:
    """Every given field checked and normalised; the first problem raises InvalidSubscriber. ``weekday``
    is a day's name, or "" for the newsroom's day."""
    return Fields(
        email=normalise_email(email),
        name=None if name is None else clean_name(name),
        locale=None if locale is None else check_locale(locale),
        timezone=None if timezone is None else check_timezone(timezone),
        rubrics=None if rubrics is None else check_rubrics(rubrics, known),
        status=None if status is None else check_status(status),
        created_at=created_at,
        delivery_time=None if delivery_time is None else check_delivery_time(delivery_time),
        cadence=None if cadence is None else check_cadence(cadence),
        weekday=None if weekday is None else (check_weekday(weekday) if weekday else NEWSROOM_DAY),
    )


def check_moment(value: str) -> datetime:
    """A moment written as ISO 8601 (created_at in a CSV); without an offset, UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidSubscriber(f"invalid created_at {value!r}", "write it as ISO 8601, e.g. 2025-03-14T08:30:00Z") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
