"""`digest send` killed, interrupted or started twice: nobody skipped, nobody doubled."""
from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from digest.delivery.worker import BATCH_AT_LEAST, BATCH_PER_CONNECTION

from support.newsroom import Newsroom
from support.ports import PATIENCE
from support.smtp import Holding, Recorder, SmtpServer

CONNECTIONS = 2


def holding_server(hold_from: int, pipelining: bool = False) -> SmtpServer:
    """A relay that takes `hold_from` messages, then holds every DATA reply until the test lets go: the
    send is stopped half-way however fast or slow the machine runs it. With `pipelining`, each
    connection's next message has its envelope on the wire, written with the held message's end."""
    return SmtpServer(Holding(hold_from=hold_from, pipelining=pipelining))


PIPELINING = pytest.mark.parametrize("pipelining", [False, True], ids=["one at a time", "pipelining"])


def newsroom(tmp_path, server, subscribers=60) -> Newsroom:
    # A held reply must outlast the test's own steps on a loaded machine: the relay holds it, not the clock.
    smtp = (f'host = "127.0.0.1"\nport = {server.port}\ntls = "none"\nconnections = {CONNECTIONS}\n'
            f"deadline_seconds = {PATIENCE}\ntimeout_seconds = {PATIENCE}\n")
    return Newsroom(tmp_path, subscribers=subscribers, smtp=smtp)


def wait_for(predicate, timeout=PATIENCE):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def signal_taken(pid: int, sig: signal.Signals) -> bool:
    """The kernel has handed `sig` to the process (it is no longer pending): Python's handler has run
    or is about to, in that process's own event loop."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    pending = 0
    for line in status.splitlines():
        if line.startswith(("SigPnd:", "ShdPnd:")):
            pending |= int(line.split()[1], 16)
    return not pending & (1 << (sig - 1))


@PIPELINING
def test_sigkill_mid_run_then_rerun_delivers_to_everyone_with_at_most_in_flight_duplicates(tmp_path, pipelining):
    server = holding_server(15, pipelining)
    try:
        room = newsroom(tmp_path, server)
        process = room.popen("send")
        wait_for(lambda: len(server.handler.messages) >= 15 and server.handler.held.is_set())
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=PATIENCE)
        server.handler.release.set()
        first = Counter(r for m in server.handler.messages for r in m.rcpt_tos)
        # What the killed run held: the rows it had claimed (a small batch, and the next one claimed while
        # it went), of which at most one per connection was on the wire.
        in_flight = {sid for sid, status in room.ledger_rows().items() if status == "leased"}
        assert len(in_flight) <= 2 * max(BATCH_AT_LEAST, CONNECTIONS * BATCH_PER_CONNECTION)
        assert len(first) < len(room.emails)  # it really was stopped half-way

        result = room.cli("send")
        assert result.returncode == 0, result.stderr
        total = Counter(r for m in server.handler.messages for r in m.rcpt_tos)
        assert sorted(total) == sorted(room.emails)  # nobody skipped
        doubled = {address for address, n in total.items() if n > 1}
        assert all(n <= 2 for n in total.values())
        assert len(doubled) <= CONNECTIONS
        ids = {room.store.get(a).id for a in doubled}
        assert ids <= in_flight  # only a message in flight at the kill can arrive twice
        assert set(room.ledger_rows().values()) == {"sent"}
    finally:
        server.stop()


@PIPELINING
def test_sigint_finishes_what_is_in_flight_records_it_and_summarises(tmp_path, pipelining):
    server = holding_server(10, pipelining)
    try:
        room = newsroom(tmp_path, server)
        process = room.popen("send")
        wait_for(lambda: len(server.handler.messages) >= 10 and server.handler.held.is_set())
        process.send_signal(signal.SIGINT)
        # The messages in flight are let go only once the signal is taken: the run cannot have
        # gone on to the end meanwhile.
        wait_for(lambda: signal_taken(process.pid, signal.SIGINT))
        server.handler.release.set()
        out, err = process.communicate(timeout=PATIENCE)
        assert process.returncode == 1
        assert "Traceback" not in err
        assert "interrupted" in err and "sent" in out
        rows = room.ledger_rows()
        assert "leased" not in rows.values()  # what was claimed and not sent is due again
        sent_first = Counter(r for m in server.handler.messages for r in m.rcpt_tos)
        assert sum(1 for s in rows.values() if s == "sent") == len(sent_first)
        assert len(sent_first) < len(room.emails)

        result = room.cli("send")
        assert result.returncode == 0, result.stderr
        total = Counter(r for m in server.handler.messages for r in m.rcpt_tos)
        assert sorted(total) == sorted(room.emails) and set(total.values()) == {1}  # no duplicate at all
    finally:
        server.stop()


def test_two_sends_of_the_same_edition_at_once_share_it_and_nobody_gets_two(tmp_path):
    """The first send is really running, one of its messages held by the relay, when the second starts:
    they share the edition's rows instead of one refusing."""
    server = holding_server(3)
    try:
        room = newsroom(tmp_path, server, subscribers=40)
        process = room.popen("send")
        try:
            wait_for(server.handler.held.is_set)
            second = room.popen("send")
            time.sleep(1)  # not a pace the test relies on: whatever the second does meanwhile, it sends nothing twice
        finally:
            server.handler.release.set()
            out, err = process.communicate(timeout=PATIENCE)
            out2, err2 = second.communicate(timeout=PATIENCE)
        assert process.returncode == 0, err
        assert second.returncode == 0, err2
        total = Counter(r for m in server.handler.messages for r in m.rcpt_tos)
        assert sorted(total) == sorted(room.emails) and set(total.values()) == {1}
        again = room.cli("send")
        assert again.returncode == 0, again.stderr
        assert "Nothing new to send" in again.stdout
    finally:
        server.stop()


def test_rows_held_by_a_worker_of_another_machine_go_out_once_its_lease_runs_out(tmp_path, smtp_server):
    """A worker on another host claims rows and is never heard of again: nobody here can tell it is
    dead, so its rows wait for its lease to end, then any run sends them (the clock set a minute on)."""
    from datetime import UTC, datetime, timedelta

    from digest.delivery.queue import Queue

    room = newsroom(tmp_path, smtp_server, subscribers=10)
    assert room.cli("send", "--enqueue-only").returncode == 0
    elsewhere = Queue(room.store, worker="another-host:4242:feedbeef", lease_seconds=60)
    held = elsewhere.claim(4)
    assert len(held) == 4
    first = room.cli("send")
    assert first.returncode == 0, first.stderr  # as far as anyone here knows, they are being sent
    assert "in flight            4" in first.stdout
    assert len(smtp_server.handler.messages) == 6
    later = (datetime.now(UTC) + timedelta(seconds=61)).isoformat()
    second = room.cli("send", "--now", later)
    assert second.returncode == 0, second.stderr
    total = Counter(r for m in smtp_server.handler.messages for r in m.rcpt_tos)
    assert sorted(total) == sorted(room.emails) and set(total.values()) == {1}
    assert set(room.ledger_rows().values()) == {"sent"}


def test_a_ledger_that_cannot_be_written_stops_the_run_cleanly(tmp_path):
    """A database locked by someone else for longer than the busy timeout: the run stops with one
    clear error instead of sending on unrecorded, and the next run finishes the job."""
    import sqlite3
    import threading

    from digest.core.errors import LedgerError

    room = Newsroom(tmp_path, subscribers=12)
    locked = threading.Event()
    release = threading.Event()

    class LockingRecorder(Recorder):
        async def handle_DATA(self, server, session, envelope):
            reply = await super().handle_DATA(server, session, envelope)
            if len(self.messages) == 3 and not locked.is_set():
                def hold():
                    conn = sqlite3.connect(room.settings.database, timeout=PATIENCE)
                    conn.execute("BEGIN EXCLUSIVE")
                    locked.set()
                    release.wait(PATIENCE)
                    conn.rollback()
                    conn.close()
                threading.Thread(target=hold, daemon=True).start()
                locked.wait(PATIENCE)
            return reply

    server = SmtpServer(LockingRecorder())
    try:
        room.with_smtp(server.port, connections=1)
        with pytest.raises(LedgerError, match="could not be written"):
            room.sender().run()
        first = len(server.handler.messages)
        assert first < 12  # it stopped instead of sending on without a ledger
        release.set()
        report = room.sender().run()
        assert report.ok
        total = Counter(r for m in server.handler.messages for r in m.rcpt_tos)
        assert sorted(total) == sorted(room.emails)
        assert sum(n - 1 for n in total.values()) <= 1  # at most the one message in flight
    finally:
        release.set()
        server.stop()
