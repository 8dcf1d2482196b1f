"""What time it is, for everything that schedules: the real clock, or one set by `--now` (DIGEST_NOW)
for tests and for replaying a day. A set clock starts at the given instant and runs on from there, so
that backoffs and leases still pass."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from digest.core.errors import ConfigError


class Clock:
    def __init__(self, start: datetime | None = None) -> None:
        self._offset = (start - datetime.now(UTC)) if start is not None else timedelta(0)
        self.set = start is not None

    def now(self) -> datetime:
        """Aware, in UTC."""
        return datetime.now(UTC) + self._offset

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(max(0.0, seconds))


def parse_now(value: str) -> datetime:
    """--now: an ISO 8601 instant with its offset (2026-11-30T06:00:00+09:00, or Z for UTC)."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--now: {value!r} is not an ISO 8601 time", "write it like 2026-11-30T07:00:00+01:00") from None
    if moment.tzinfo is None:
        raise ConfigError(f"--now: {value!r} has no offset", "add one, as in 2026-11-30T07:00:00+01:00 or …Z")
    return moment.astimezone(UTC)


def clock_from(value: str | None) -> Clock:
    return Clock(parse_now(value)) if value else Clock()
