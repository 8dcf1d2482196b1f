"""The ledger is the queue (issue 10), on SQLite and on PostgreSQL: enqueueing makes each reader's row
once and sends nothing; a deferred reader is a row due later that another process sends; an edition
is frozen when enqueued, so what changes in the sources afterwards changes nothing, and a correction
(`--replace`) goes only to the readers the first edition has not reached; `digest status` says who
got what, and why not."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from digest.delivery.editions import edition_key
from digest.delivery.queue import Queue
from digest.delivery.schema import deliveries, editions
from subscribers.store import as_utc

from support.cli import invoke, popen, stop
from support.mail import parse
from support.newsroom import Newsroom
from support.paths import DAY
from support.ports import wait_until

# The example's lead story, as its page dump says it, and as a correction says it.
LEAD = "Bourita et Blinken renforcent les liens"
CORRECTED = "Bourita et Blinken resserrent les liens"


@pytest.fixture
def rooms(tmp_path, database, smtp_server):
    """make(readers, delivery=""): the example newsroom on this test's database, sending to the aiosmtpd
    relay, with `readers` readers in Casablanca (reader0@example.com, …: one language, one variant to
    render); its store closed after the test."""
    made: list[Newsroom] = []

    def make(readers: int = 0, delivery: str = "") -> Newsroom:
        relay = f'host = "127.0.0.1"\nport = {smtp_server.port}\ntls = "none"\nconnections = 2\n'
        room = Newsroom(tmp_path, subscribers=0, smtp=relay, delivery=delivery, database=database)
        made.append(room)
        for i in range(readers):
            room.add_reader(f"reader{i}", "Africa/Casablanca")
        return room

    yield make
    for room in made:
        room.store.close()


def digest(room: Newsroom, command: str, *args: str, now: datetime | None = None):
    """`digest COMMAND ARGS -c <room> [--date <the reference day>] [--now NOW]`, in this process."""
    dated = ("--date", DAY.isoformat()) if command in ("send", "status") else ()
    clock = ("--now", now.isoformat()) if now else ()
    return invoke(command, *args, "-c", str(room.config), *dated, *clock)


def rows(room: Newsroom, edition: str | None = None) -> dict[str, dict]:
    """The ledger's rows (of one edition, or all), by the reader's address: every column."""
    query = select(deliveries)
    if edition:
        query = query.where(deliveries.c.edition == edition)
    ids = {room.store.get(address).id: address for address in room.emails}
    with room.store.engine.connect() as conn:
        found = [row._asdict() for row in conn.execute(query)]
    # SQLite gives its times back without their zone: UTC, as they were written.
    return {ids[row["subscriber_id"]]: {k: as_utc(v) if isinstance(v, datetime) else v for k, v in row.items()}
            for row in found}


def received(server) -> Counter[str]:
    return Counter(rcpt for message in server.handler.messages for rcpt in message.rcpt_tos)


def subjects(server, address: str) -> list[str]:
    return [str(parse(m.data)["Subject"]) for m in server.handler.messages if address in m.rcpt_tos]


def correct_the_lead(sources) -> None:
    """An editor fixes the lead story's title in the newsroom's own copy of the page dump."""
    page = sources / "sources" / "homepage-2026-11-29.txt"
    text = page.read_text(encoding="utf-8")
    assert LEAD in text
    page.write_text(text.replace(LEAD, CORRECTED), encoding="utf-8")


def test_enqueue_only_makes_each_readers_row_once_and_sends_nothing(rooms, smtp_server):
    room = rooms(4)
    key = edition_key(room.settings.newsletter.list_id, DAY)
    before = datetime.now(UTC)
    first = digest(room, "send", "--enqueue-only")
    after = datetime.now(UTC)
    assert first.exit_code == 0, first.output
    assert f"Edition {key} (frozen now): 4 readers added" in first.stdout
    made = rows(room)
    assert sorted(made) == sorted(room.emails)
    for row in made.values():
        # What the queue keeps for each row: its state, when it may go, attempts, last reply, lease.
        assert row["status"] == "pending" and row["attempts"] == 0
        assert row["last_code"] is None and row["last_error"] is None
        assert row["lease_owner"] is None and row["lease_expires"] is None
        assert before <= row["not_before"] <= after  # no local_time: due as soon as it is enqueued

    again = digest(room, "send", "--enqueue-only")
    assert again.exit_code == 0, again.output
    assert f"Edition {key} (enqueued already): 0 readers added, 0 variants rendered" in again.stdout
    assert rows(room) == made  # nothing made twice, nothing touched

    late = room.add_reader("late", "Africa/Casablanca")
    third = digest(room, "send", "--enqueue-only")
    assert "(enqueued already): 1 readers added" in third.stdout
    assert set(rows(room)) == set(made) | {late}
    with room.store.engine.connect() as conn:
        assert conn.execute(select(editions.c.key, editions.c.revision)).all() == [(key, 1)]
    assert smtp_server.handler.messages == []


def test_a_deferred_reader_is_a_row_due_later_that_another_process_sends(rooms, smtp_server):
    room = rooms(3)
    room.edit_config(lambda text: text.replace("retries = 3\n", "retries = 1\n"))  # no retry within the run
    greylisted = room.emails[1]
    smtp_server.handler.rcpt[greylisted] = ["451 4.7.1 Greylisted, try again later", None]
    before = datetime.now(UTC)
    first = digest(room, "send")
    after = datetime.now(UTC)
    assert first.exit_code == 1, first.output  # one reader left for later
    assert received(smtp_server) == {room.emails[0]: 1, room.emails[2]: 1}
    row = rows(room)[greylisted]
    assert row["status"] == "deferred" and row["attempts"] == 1
    assert row["last_code"] == 451 and "Greylisted, try again later" in row["last_error"]
    assert row["lease_owner"] is None
    # Due again retry_later_minutes (30) after the attempt, whoever runs then.
    assert before + timedelta(minutes=30) <= row["not_before"] <= after + timedelta(minutes=30)

    # Another process (a worker elsewhere: it is given no edition, no source), once the row is due.
    worker = popen("-m", "digest", "worker", "-c", str(room.config),
                   "--now", (row["not_before"] + timedelta(minutes=1)).isoformat())
    try:
        wait_until(lambda: received(smtp_server)[greylisted] == 1, "the worker to send the deferred reader's message")
        wait_until(lambda: rows(room)[greylisted]["status"] == "sent", "the worker to record it")
    finally:
        _, err = stop(worker)
    assert worker.returncode == 0, err
    assert "Worker stopped: 1 sent" in err
    assert received(smtp_server) == {address: 1 for address in room.emails}
    sent = rows(room)[greylisted]
    assert sent["attempts"] == 2 and sent["last_code"] == 250 and sent["lease_owner"] is None
    assert sent["message_id"] == row["message_id"]  # the same message, tried again


def test_what_was_enqueued_goes_out_whatever_the_sources_say_afterwards(rooms, smtp_server):
    room = rooms(delivery='local_time = "07:00"')
    sources = room.own_sources()
    paris = room.add_reader("paris", "Europe/Paris")  # 07:00 there: 06:00 UTC
    new_york = room.add_reader("newyork", "America/New_York")  # 07:00 there: 12:00 UTC
    enqueued = digest(room, "send", "--enqueue-only", now=datetime(2026, 11, 30, 5, 0, tzinfo=UTC))
    assert enqueued.exit_code == 0, enqueued.output

    correct_the_lead(sources)  # after the edition was frozen: it changes nothing
    morning = digest(room, "send", now=datetime(2026, 11, 30, 6, 30, tzinfo=UTC))
    # New York's reader waits for their hour: the plan, not a failure (exit 0), and the summary says so
    assert morning.exit_code == 0 and "waiting              1" in morning.output, morning.output
    shutil.rmtree(sources)  # nor does a machine that has no sources at all
    noon = digest(room, "send", now=datetime(2026, 11, 30, 12, 30, tzinfo=UTC))
    assert noon.exit_code == 0, noon.output

    assert received(smtp_server) == {paris: 1, new_york: 1}
    for address in (paris, new_york):
        (subject,) = subjects(smtp_server, address)
        assert subject.startswith(LEAD), subject


def test_a_correction_goes_only_to_the_readers_the_first_edition_has_not_reached(rooms, smtp_server):
    room = rooms(delivery='local_time = "07:00"')
    sources = room.own_sources()
    paris = room.add_reader("paris", "Europe/Paris")
    los_angeles = room.add_reader("losangeles", "America/Los_Angeles")  # 07:00 there: 15:00 UTC
    first = edition_key(room.settings.newsletter.list_id, DAY)
    assert digest(room, "send", "--enqueue-only", now=datetime(2026, 11, 30, 5, 0, tzinfo=UTC)).exit_code == 0
    assert digest(room, "send", now=datetime(2026, 11, 30, 6, 30, tzinfo=UTC)).exit_code == 0
    assert received(smtp_server) == {paris: 1}

    correct_the_lead(sources)
    replaced = digest(room, "send", "--replace", "--enqueue-only", now=datetime(2026, 11, 30, 7, 0, tzinfo=UTC))
    assert replaced.exit_code == 0, replaced.output
    assert f"Edition {first}.2 (frozen now): 1 readers added" in replaced.stdout
    assert f"it replaces {first}" in replaced.stdout
    assert {a: r["status"] for a, r in rows(room, first).items()} == {paris: "sent", los_angeles: "superseded"}

    afternoon = digest(room, "send", now=datetime(2026, 11, 30, 15, 30, tzinfo=UTC))
    assert afternoon.exit_code == 0, afternoon.output
    assert received(smtp_server) == {paris: 1, los_angeles: 1}  # never both
    assert subjects(smtp_server, paris)[0].startswith(LEAD)
    assert subjects(smtp_server, los_angeles)[0].startswith(CORRECTED)
    assert {a: r["status"] for a, r in rows(room, f"{first}.2").items()} == {los_angeles: "sent"}
    # Sending the day again later finds nothing to do, for either revision.
    again = digest(room, "send", now=datetime(2026, 11, 30, 16, 0, tzinfo=UTC))
    assert again.exit_code == 0 and "Nothing new to send" in again.stdout
    assert len(smtp_server.handler.messages) == 2


def test_status_counts_each_state_and_lists_who_did_not_get_it_with_the_last_reply(rooms, smtp_server):
    room = rooms(6)
    room.edit_config(lambda text: text.replace("retries = 3\n", "retries = 1\n"))
    full, gone, refused = room.emails[:3]
    smtp_server.handler.rcpt[full] = ["452 4.2.2 Mailbox full"]
    smtp_server.handler.rcpt[gone] = ["550 5.1.1 No such user here"]
    smtp_server.handler.rcpt[refused] = ["554 5.7.1 Refused by local policy"]
    assert digest(room, "send").exit_code == 1
    # Two readers more, one of whose rows a worker on another machine holds.
    for name in ("akiko", "kenji"):
        room.add_reader(name, "Asia/Tokyo")
    assert digest(room, "send", "--enqueue-only").exit_code == 0
    elsewhere = Queue(room.store, worker="relay-b:4242:feedbeef")
    assert len(elsewhere.claim(1)) == 1
    key = edition_key(room.settings.newsletter.list_id, DAY)

    (state,) = json.loads(digest(room, "status", "--format", "json").stdout)
    assert state["edition"] == key and state["status"] == "open" and state["revision"] == 1
    assert state["counts"] == {"pending": 1, "leased": 1, "sent": 3, "deferred": 1, "failed": 1, "bounced": 1,
                               "superseded": 0, "cancelled": 0, "unneeded": 0}
    assert [(lease["worker"], lease["rows"]) for lease in state["leases"]] == [("relay-b:4242:feedbeef", 1)]
    assert sum(hour["rows"] for hour in state["due_by_hour"]) == 2  # the pending one and the deferred one

    table = digest(room, "status", "--list", "deferred")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].startswith(f"Edition {key} (open, enqueued ")
    assert "  sent                3" in lines and "  bounced             1" in lines
    assert any(line.startswith("  leased              1   held by relay-b:4242:feedbeef (1, until ") for line in lines)
    (listed,) = [line for line in lines if full in line]
    assert "1 attempts" in listed and "452 4.2.2 Mailbox full" in listed

    (failed,) = json.loads(digest(room, "status", "--list", "failed", "--format", "json").stdout)
    assert [(r["email"], r["code"], r["attempts"]) for r in failed["readers"]] == [(refused, 554, 1)]
    assert "Refused by local policy" in failed["readers"][0]["reply"]
    (bounced,) = json.loads(digest(room, "status", "--list", "bounced", "--format", "json").stdout)
    assert [(r["email"], r["code"]) for r in bounced["readers"]] == [(gone, 550)]
