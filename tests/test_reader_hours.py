"""Each reader at their hour (issue 10): with `[delivery] local_time = "07:00"`, readers around the world
each get the edition at the first 07:00 where they live after it was enqueued, never before, as the
clock is moved on an hour at a time with `--now` (or DIGEST_NOW); an hour the clocks skip goes at the
jump, one they show twice goes once, at the first; a reader never gets two editions at once. On
SQLite and on PostgreSQL: both compare the queue's times in SQL."""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from digest.delivery.editions import edition_key
from digest.delivery.schema import deliveries
from subscribers.schema import subscribers

from support.cli import invoke
from support.mail import parse
from support.newsroom import Newsroom
from support.paths import DAY

HOUR = timedelta(hours=1)


@pytest.fixture
def room(tmp_path, database, smtp_server):
    """The example newsroom on this test's database, readers at 07:00 their time, sending to aiosmtpd."""
    relay = f'host = "127.0.0.1"\nport = {smtp_server.port}\ntls = "none"\n'
    newsroom = Newsroom(tmp_path, subscribers=0, smtp=relay, delivery='local_time = "07:00"', database=database)
    yield newsroom
    newsroom.store.close()


def send(room: Newsroom, now: datetime, day: date = DAY, *args: str, by_env: bool = False):
    """`digest send` with the clock set to `now`: by --now, or (by_env) by DIGEST_NOW."""
    clock = {"DIGEST_NOW": now.isoformat()} if by_env else None
    options = () if by_env else ("--now", now.isoformat())
    result = invoke("send", *args, "-c", str(room.config), "--date", day.isoformat(), *options, env=clock)
    assert result.exit_code in (0, 1), result.output  # 1: some readers are owed it later
    return result


def step_by_step(room: Newsroom, server, steps: Iterable[datetime]) -> dict[datetime, set[str]]:
    """`digest send` at each step in turn (every other one told the time by DIGEST_NOW): who got a
    message at which step."""
    got: dict[datetime, set[str]] = {}
    for i, now in enumerate(steps):
        before = len(server.handler.messages)
        send(room, now, by_env=i % 2 == 1)
        got[now] = {rcpt for message in server.handler.messages[before:] for rcpt in message.rcpt_tos}
    return got


def due_by_hour(room: Newsroom, day: date = DAY) -> dict[str, int]:
    status = invoke("status", "-c", str(room.config), "--date", day.isoformat(), "--format", "json")
    assert status.exit_code == 0, status.output
    (edition,) = json.loads(status.stdout)
    return {hour["hour"]: hour["rows"] for hour in edition["due_by_hour"]}


def due(room: Newsroom, day: date = DAY) -> dict[str, str]:
    """When each reader's row not sent yet is due, to the second, as `digest status --list pending` says."""
    status = invoke("status", "-c", str(room.config), "--date", day.isoformat(), "--list", "pending", "--format", "json")
    assert status.exit_code == 0, status.output
    (edition,) = json.loads(status.stdout)
    return {row["email"]: row["due"] for row in edition["readers"]}


def test_readers_around_the_world_each_get_it_at_seven_where_they_live(room, smtp_server):
    # Enqueued at 18:00 in Casablanca on the 29th: tomorrow morning's edition, everywhere.
    enqueued = datetime(2026, 11, 29, 17, 0, tzinfo=UTC)
    seven = {  # the first 07:00 of each reader after that, in UTC
        room.add_reader("auckland", "Pacific/Auckland"): datetime(2026, 11, 29, 18, 0, tzinfo=UTC),  # NZDT, +13
        room.add_reader("tokyo", "Asia/Tokyo"): datetime(2026, 11, 29, 22, 0, tzinfo=UTC),
        room.add_reader("casablanca", "Africa/Casablanca"): datetime(2026, 11, 30, 6, 0, tzinfo=UTC),
        room.add_reader("paris", "Europe/Paris"): datetime(2026, 11, 30, 6, 0, tzinfo=UTC),
        room.add_reader("newyork", "America/New_York"): datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
        room.add_reader("losangeles", "America/Los_Angeles"): datetime(2026, 11, 30, 15, 0, tzinfo=UTC),
    }
    for address, moment in seven.items():  # the table above says what the zone database says
        zone = room.store.get(address).timezone
        assert moment.astimezone(ZoneInfo(zone)).strftime("%H:%M") == "07:00", address

    assert send(room, enqueued, DAY, "--enqueue-only").exit_code == 0
    assert due_by_hour(room) == {"2026-11-29T18:00:00+00:00": 1, "2026-11-29T22:00:00+00:00": 1,
                                 "2026-11-30T06:00:00+00:00": 2, "2026-11-30T12:00:00+00:00": 1,
                                 "2026-11-30T15:00:00+00:00": 1}
    steps = [enqueued + HOUR / 2 + i * HOUR for i in range(23)]  # 17:30 … 15:30 the next day
    got = step_by_step(room, smtp_server, steps)
    for previous, now in zip([enqueued, *steps[:-1]], steps, strict=True):
        expected = {address for address, moment in seven.items() if previous < moment <= now}
        assert got[now] == expected, f"at {now:%d %H:%M} UTC"
    assert sorted(r for m in smtp_server.handler.messages for r in m.rcpt_tos) == sorted(seven)


def test_an_hour_the_clocks_skip_goes_at_the_jump(room, smtp_server):
    # New York, 14 March 2027: at 02:00 the clocks go to 03:00 (07:00 UTC); 02:30 never comes that night.
    at_half_past_two = room.add_reader("insomniac", "America/New_York", hour="02:30")
    asap = room.add_reader("eager", "America/New_York", hour="asap")
    at_seven = room.add_reader("regular", "America/New_York")  # 07:00 EDT: 11:00 UTC
    enqueued = datetime(2027, 3, 14, 4, 0, tzinfo=UTC)  # 23:00 on the 13th in New York
    assert send(room, enqueued, DAY, "--enqueue-only").exit_code == 0
    due_at = due(room)
    assert due_at.pop(asap).startswith("2027-03-14T04:00:")  # as soon as it is out (the clock runs on from --now)
    assert due_at == {at_half_past_two: "2027-03-14T07:00:00+00:00", at_seven: "2027-03-14T11:00:00+00:00"}
    steps = [enqueued + HOUR / 2 + i * HOUR for i in range(8)]  # 04:30 … 11:30 UTC
    steps.append(datetime(2027, 3, 15, 12, 0, tzinfo=UTC))  # and the next day, when 02:30 comes again
    got = step_by_step(room, smtp_server, steps)
    # 23:30, 00:30 and 01:30 EST; then 03:30 EDT: the jump (03:00 EDT, 07:00 UTC) went by in that hour.
    assert [got[now] for now in steps] == [{asap}, set(), set(), {at_half_past_two}, set(), set(), set(),
                                           {at_seven}, set()]


def test_an_hour_the_clocks_show_twice_goes_once_at_the_first(room, smtp_server):
    # New York, 1 November 2026: 01:30 EDT (05:30 UTC), then at 02:00 back to 01:00, and 01:30 EST (06:30 UTC).
    night_owl = room.add_reader("nightowl", "America/New_York", hour="01:30")
    enqueued = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)  # 23:00 on the 31st in New York
    assert send(room, enqueued, DAY, "--enqueue-only").exit_code == 0
    assert due(room) == {night_owl: "2026-11-01T05:30:00+00:00"}  # 01:30 EDT; 01:30 EST would be 06:30
    steps = [enqueued + i * HOUR for i in range(1, 6)]  # 04:00 … 08:00 UTC
    got = step_by_step(room, smtp_server, steps)
    assert [got[now] for now in steps] == [set(), set(), {night_owl}, set(), set()]  # in the hour to 06:00 UTC
    assert len(smtp_server.handler.messages) == 1


def test_a_reader_never_gets_two_editions_at_once(room, smtp_server):
    """Los Angeles' copy of the 29th's edition is still waiting for 07:00 there when the 30th's is
    enqueued for the same 07:00: the older one is superseded, even when the run for the older edition
    comes first."""
    paris = room.add_reader("paris", "Europe/Paris")
    los_angeles = room.add_reader("losangeles", "America/Los_Angeles")
    day, next_day = DAY, DAY + timedelta(days=1)
    send(room, datetime(2026, 11, 29, 20, 0, tzinfo=UTC), day, "--enqueue-only")
    send(room, datetime(2026, 11, 30, 6, 30, tzinfo=UTC), day)  # Paris: the 29th's, at 07:00 on the 30th
    send(room, datetime(2026, 11, 30, 12, 0, tzinfo=UTC), next_day, "--enqueue-only")
    # Cron sends the older edition first, then the newer one.
    older = send(room, datetime(2026, 11, 30, 15, 30, tzinfo=UTC), day)
    send(room, datetime(2026, 11, 30, 15, 30, tzinfo=UTC), next_day)
    send(room, datetime(2026, 12, 1, 6, 30, tzinfo=UTC), next_day)  # Paris: the 30th's, the next morning
    assert older.exit_code == 0, older.output
    assert editions_received(smtp_server) == {
        paris: ["2026-11-29", "2026-11-30"],  # one a day
        los_angeles: ["2026-11-30"],  # the newer one only
    }
    assert ledger(room, day) == {paris: "sent", los_angeles: "superseded"}


def editions_received(server) -> dict[str, list[str]]:
    """The day of the edition of each message each reader got, in the order they came (from the
    Message-ID, which names the edition)."""
    got: dict[str, list[str]] = {}
    for message in server.handler.messages:
        day = re.search(r"-(\d{4}-\d{2}-\d{2})(?:\.\d+)?\.[0-9a-f]+@", str(parse(message.data)["Message-ID"])).group(1)
        for rcpt in message.rcpt_tos:
            got.setdefault(rcpt, []).append(day)
    return got


def ledger(room: Newsroom, day: date) -> dict[str, str]:
    """The state of each reader's row for the edition of `day`."""
    key = edition_key(room.settings.newsletter.list_id, day)
    with room.store.engine.connect() as conn:
        found = conn.execute(select(subscribers.c.email, deliveries.c.status)
                             .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                             .where(deliveries.c.edition == key)).all()
    return dict(found)
