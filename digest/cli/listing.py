"""How `digest subscribers` shows readers: the list as a table or streamed JSON, a reader's choices in
one line, and their consent history."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO

from digest.core.config import Settings
from digest.core.text import printable
from subscribers.consent import Event
from subscribers.csvio import iso_utc
from subscribers.model import ASAP, Subscriber
from subscribers.validate import weekday_name


def rubrics(subscriber: Subscriber) -> str:
    return ";".join(sorted(subscriber.rubrics)) or "(all)"


def hour(subscriber: Subscriber, settings: Settings) -> str:
    """Their hour; the newsletter's in brackets when they chose none (as "(all)" for rubrics)."""
    return subscriber.delivery_time or f"({settings.delivery.local_time or ASAP})"


def rhythm(subscriber: Subscriber, settings: Settings) -> str:
    """daily, or weekly:sunday; the newsroom's day in brackets when they chose none: weekly:(sunday)."""
    if subscriber.cadence != "weekly":
        return subscriber.cadence
    day = weekday_name(subscriber.weekday) or f"({weekday_name(settings.delivery.weekly_day)})"
    return f"weekly:{day}"


def table(rows: Iterator[Subscriber], out: IO[str], settings: Settings) -> int:
    out.write(f"{'id':>6}  {'email':<34} {'status':<12} {'locale':<6} {'timezone':<20} {'hour':<7} {'rhythm':<16} "
              f"{'rubrics':<30} name\n")
    count = 0
    for s in rows:
        out.write(f"{s.id:>6}  {s.email:<34} {s.status:<12} {s.locale:<6} {s.timezone:<20} {hour(s, settings):<7} "
                  f"{rhythm(s, settings):<16} {rubrics(s):<30} {s.name}\n")
        count += 1
    return count


def as_json(rows: Iterator[Subscriber], out: IO[str]) -> int:
    """A JSON array written as it streams: the list can be 200,000 long."""
    count = 0
    out.write("[")
    for s in rows:
        record = {"id": s.id, "email": s.email, "name": s.name, "locale": s.locale, "timezone": s.timezone,
                  "rubrics": sorted(s.rubrics), "status": s.status, "delivery_time": s.delivery_time,
                  "cadence": s.cadence, "weekday": weekday_name(s.weekday) or None,
                  "created_at": iso_utc(s.created_at), "updated_at": iso_utc(s.updated_at)}
        out.write(("\n  " if count == 0 else ",\n  ") + json.dumps(record, ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def history_table(events: list[Event], out: IO[str]) -> None:
    for e in events:
        where = " ".join(part for part in (e.network or "", printable(e.user_agent or "")) if part)
        detail = json.dumps(e.detail, ensure_ascii=False, sort_keys=True) if e.detail else ""
        wording = f"wording {printable(e.wording)}" if e.wording else ""
        out.write("  ".join(filter(None, (iso_utc(e.at), f"{e.event:<13}", f"{e.channel:<11}", printable(e.source),
                                          wording, where, detail))) + "\n")
