"""When each reader gets an edition: the first moment, at or after the edition was enqueued, at which
it is their hour where they live (`[delivery] local_time`, or their own choice), or at once.

Daylight-saving changes neither skip nor double a reader: an hour that does not exist that day (the
clocks jump over it) goes at the first instant after the jump; an hour that happens twice goes once,
at its first occurrence. Readers share zones and hours, so each (zone, day, hour) is worked out once.
"""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

ASAP = "asap"
_HOUR = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def parse_hour(value: str) -> time:
    match = _HOUR.fullmatch(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not an hour like 07:00")
    return time(int(match[1]), int(match[2]))


def due_at(enqueued: datetime, zone: str, hour: str | None) -> datetime:
    """The instant (UTC) a reader in `zone` who wants the edition at `hour` ("HH:MM", "asap" or None:
    at once) gets an edition enqueued at `enqueued`."""
    if hour in (None, "", ASAP):
        return enqueued.astimezone(UTC)
    wanted = parse_hour(hour)
    local_day = enqueued.astimezone(ZoneInfo(zone)).date()
    for offset in range(3):  # today's hour may be past; tomorrow's always comes (a day skipped: after)
        moment = local_instant(zone, local_day + timedelta(days=offset), wanted)
        if moment >= enqueued:
            return moment
    raise AssertionError("an hour comes within three days")


@lru_cache(maxsize=65536)
def local_instant(zone: str, day: date, wanted: time) -> datetime:
    """The instant (UTC) the clocks of `zone` show `wanted` on `day`; the first instant after the jump
    when they skip it, the first occurrence when they show it twice."""
    tz = ZoneInfo(zone)
    wall = datetime.combine(day, wanted)
    first = wall.replace(tzinfo=tz, fold=0)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall:
        return first.astimezone(UTC)  # it exists (fold=0: the first of two, when twice)
    # In a gap, the two folds land on either side of the jump: find the instant the offset changes.
    low, high = sorted((first.astimezone(UTC), wall.replace(tzinfo=tz, fold=1).astimezone(UTC)))
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset():
            low = middle
        else:
            high = middle
    # Clocks change on a whole second: the one in (low, high].
    return low.replace(microsecond=0) + timedelta(seconds=1)
