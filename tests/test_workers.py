"""Many workers, one edition (issue 10), on PostgreSQL: four `digest worker` processes share an edition
of 5,000 readers into Postfix's smtp-sink while two of them are SIGKILLed at random moments and
replaced: every reader gets it, and the only second copies are the dead workers' messages in flight,
resent with the same Message-ID. And the relay's rate holds for the four together, not for each.

What arrived is what smtp-sink wrote: one file per message it accepted, deleted if the transaction was
cut off, so the files are the relay's own account of who got what, and when."""
from __future__ import annotations

import random
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from digest.delivery.queue import HOST
from digest.delivery.schema import deliveries, delivery_workers, relay_slots
from subscribers.schema import subscribers
from subscribers.validate import check_fields

from support.cli import invoke, popen, stop_all
from support.databases import fresh_postgres
from support.newsroom import Newsroom
from support.paths import DAY, EXAMPLES
from support.ports import wait_until
from support.smtp import SmtpSink

WORKERS = 4
CONNECTIONS = 8  # the relay's, for all the workers together
LEASE = 5.0  # seconds: short, so that what a dead worker held (its connections too) comes back soon
ARTICLE = EXAMPLES / "features" / "2026-11-29-dessalement.md"


@pytest.fixture
def postgres() -> Iterator[str]:
    with fresh_postgres() as url:
        yield url


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = SmtpSink(dump=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def newsroom(tmp_path, postgres, sink) -> Iterator:
    """make(readers, relay=""): the example newsroom on PostgreSQL with that many readers, sending to
    smtp-sink, nothing enqueued yet; its store closed after the test."""
    made: list[Newsroom] = []

    def make(readers: int, relay: str = "") -> Newsroom:
        smtp = f'host = "127.0.0.1"\nport = {sink.port}\ntls = "none"\nconnections = {CONNECTIONS}\n{relay}'
        room = Newsroom(tmp_path, subscribers=0, smtp=smtp, database=postgres,
                        delivery=f"lease_seconds = {LEASE}\npoll_seconds = 0.5\n")
        made.append(room)
        room.emails = [f"reader{i:05d}@example.com" for i in range(readers)]
        room.store.merge([check_fields(address, f"Lecteur {i}", "fr", "Africa/Casablanca")
                          for i, address in enumerate(room.emails)])
        return room

    yield make
    for room in made:
        room.store.close()


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen]]:
    """The `digest worker` processes a test starts: whatever happens to the test, none outlives it."""
    started: list[subprocess.Popen] = []
    yield started
    stop_all(started)


def start_worker(room: Newsroom, started: list[subprocess.Popen]) -> subprocess.Popen:
    process = popen("-m", "digest", "worker", "-c", str(room.config))
    started.append(process)
    return process


def ready(room: Newsroom, processes: list[subprocess.Popen]) -> bool:
    """Every one of these workers that runs has said it lives (its first heartbeat, written once it
    handles SIGTERM): as under systemd, the workers are up before cron enqueues an edition."""
    with room.store.engine.connect() as conn:
        alive = {worker.split(":")[1] for worker in conn.execute(select(delivery_workers.c.id)).scalars()}
    return all(str(p.pid) in alive for p in processes if p.poll() is None)


def enqueue(room: Newsroom) -> None:
    """The day's edition enqueued, as cron would: made of one article (messages of 18 KB rather than
    90, in one language and one variant): these tests are about the queue, not the rendering."""
    enqueued = invoke("send", "--enqueue-only", "--source", str(ARTICLE), "-c", str(room.config),
                      "--date", DAY.isoformat())
    assert enqueued.exit_code == 0, enqueued.output
    assert f"{len(room.emails):,} readers added" in enqueued.stdout


def count(room: Newsroom, status: str) -> int:
    with room.store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(deliveries).where(deliveries.c.status == status)).scalar_one()


def claimed_twice(room: Newsroom) -> set[str]:
    with room.store.engine.connect() as conn:
        return set(conn.execute(select(subscribers.c.email).join(deliveries, deliveries.c.subscriber_id == subscribers.c.id)
                                .where(deliveries.c.attempts > 1)).scalars())


def sent_by(err: str) -> int:
    """What a worker says it sent, in the line it prints when it stops."""
    return int(re.search(r"Worker stopped: ([\d,]+) sent", err).group(1).replace(",", ""))


@dataclass(frozen=True)
class Kill:
    pid: int
    connections: int  # the relay connections the worker held when it died: its messages in flight at most
    sent_before: int  # rows recorded as sent when it died


def kill(room: Newsroom, process: subprocess.Popen) -> Kill:
    """SIGKILL, then read what the dead worker held. Its rows of relay_slots keep its name until their
    lease, renewed at its last heartbeat, runs out: read before then, they are exactly the connections
    it held; read later (a very slow machine), the bound falls back to all the relay's connections."""
    process.kill()
    process.wait()  # reaped: a zombie would still look alive to the workers of this machine
    owner = f"{HOST[:40]}:{process.pid}:%"
    read_at = datetime.now(UTC)
    with room.store.engine.connect() as conn:
        last_seen = conn.execute(select(delivery_workers.c.seen_at).where(delivery_workers.c.id.like(owner))).scalar()
        held = conn.execute(select(func.count()).select_from(relay_slots).where(relay_slots.c.owner.like(owner))).scalar_one()
    exact = last_seen is not None and read_at < last_seen + timedelta(seconds=LEASE)
    return Kill(process.pid, held if exact else CONNECTIONS, count(room, "sent"))


def test_four_workers_two_killed_and_replaced_every_reader_once_but_for_what_was_in_flight(newsroom, sink, workers):
    readers = 5000
    room = newsroom(readers)
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    try:
        for _ in range(WORKERS):
            start_worker(room, workers)
        wait_until(lambda: ready(room, workers), "the workers to start")
        enqueue(room)
        # Two of the first four die, each at a random point of the run, and each is replaced at once.
        victims = chance.sample(workers[:WORKERS], 2)
        moments = sorted([chance.uniform(0.1, 0.4) * readers, chance.uniform(0.45, 0.75) * readers])
        kills = []
        for victim, moment in zip(victims, moments, strict=True):
            wait_until(lambda moment=moment: count(room, "sent") >= moment, f"{moment:.0f} messages sent (seed {seed})",
                       every=0.05)
            kills.append(kill(room, victim))
            start_worker(room, workers)
        wait_until(lambda: count(room, "sent") == readers, f"every row to be sent (seed {seed})", every=0.1)
        wait_until(lambda: ready(room, workers), "the replacements to start")  # so that each stops cleanly
    finally:
        outputs = dict(zip([p.pid for p in workers], stop_all(workers), strict=True))
    survivors = [p for p in workers if p.pid not in {k.pid for k in kills}]
    for process in survivors:
        assert process.returncode == 0, outputs[process.pid][1]
    assert all(0 < k.sent_before < readers for k in kills), (kills, seed)  # both died with work left

    arrivals = sink.arrivals()
    got = Counter(rcpt for arrival in arrivals for rcpt in arrival.recipients)
    assert set(got) == set(room.emails), f"{len(set(room.emails) - set(got))} readers got nothing (seed {seed})"
    doubled = {address: n for address, n in got.items() if n > 1}
    assert set(doubled.values()) <= {2}, seed
    bound = sum(k.connections for k in kills)
    assert len(doubled) <= bound, (doubled, kills, seed)
    for address in doubled:  # the same message again, not another one
        ids = {arrival.message_id for arrival in arrivals if address in arrival.recipients}
        assert len(ids) == 1 and ids != {""}, (address, ids)
    # Only rows claimed twice (a dead worker's, taken up again) can have gone twice.
    assert set(doubled) <= claimed_twice(room), seed
    assert count(room, "sent") == readers and count(room, "leased") == 0
    print(f"\nseed {seed}: {len(arrivals)} messages for {readers} readers; killed at {[k.sent_before for k in kills]} "
          f"holding {[k.connections for k in kills]} connections; {len(doubled)} sent twice; "
          f"survivors sent {[sent_by(outputs[p.pid][1]) for p in survivors]}")


def test_the_relays_rate_holds_for_four_workers_together(newsroom, sink, workers):
    """[smtp] rate = 100 a second, for every worker together: the four of them could send several times
    that into smtp-sink (each alone would, if the limit were a process's), so the limit is what holds
    them. The rate is measured where it matters, at the relay: messages written by smtp-sink per
    second, from the 10 % to the 90 % mark, leaving out the start (the workers taking up the edition
    one after the other) and the end (the last ones finishing).

    The upper bound (10 % over) is what protects the newsroom's sender reputation: asserted as such.
    The lower bound is loose, half the rate: a machine whose cores are busy with other work may not
    reach the limit at all, and sending slower than allowed is no failure of the limit; it fails only
    a limit that keeps the workers far below what the relay allows. (On a quiet machine and on one
    with both cores busy, this measures 100 to 102 a second.)"""
    rate, readers = 100, 1000
    room = newsroom(readers, relay=f"rate = {rate}\n")
    try:
        for _ in range(WORKERS):
            start_worker(room, workers)
        wait_until(lambda: ready(room, workers), "the workers to start")
        enqueue(room)
        wait_until(lambda: count(room, "sent") == readers, "every row to be sent", every=0.1)
    finally:
        outputs = stop_all(workers)
    for process, (_, err) in zip(workers, outputs, strict=True):
        assert process.returncode == 0, err
    shares = [sent_by(err) for _, err in outputs]
    assert sum(shares) == readers and all(shares), shares  # all four sent, under the one limit

    times = [arrival.at for arrival in sink.arrivals()]
    assert len(times) == readers
    first, last = readers // 10, readers - readers // 10
    measured = (last - first) / (times[last] - times[first])
    print(f"\nrate {measured:.1f}/s for a limit of {rate}/s; shares {shares}")
    assert measured <= rate * 1.10
    assert measured >= rate * 0.5
