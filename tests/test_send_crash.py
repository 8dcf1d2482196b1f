"""`digest send` killed, interrupted or started twice: nobody skipped, nobody doubled."""
from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from delivery import Newsroom
from smtp_servers import Recorder, SmtpServer

CONNECTIONS = 2


@pytest.fixture
def slow_server():
    server = SmtpServer(Recorder(data_delay=0.05))
    yield server
    server.stop()


def newsroom(tmp_path, server, subscribers=60) -> Newsroom:
    smtp = f'host = "127.0.0.1"\nport = {server.port}\ntls = "none"\nconnections = {CONNECTIONS}\n'
    return Newsroom(tmp_path, subscribers=subscribers, smtp=smtp)


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_sigkill_mid_run_then_rerun_delivers_to_everyone_with_at_most_in_flight_duplicates(tmp_path, slow_server):
    room = newsroom(tmp_path, slow_server)
    process = room.popen("send")
    wait_for(lambda: len(slow_server.handler.messages) >= 15)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    first = Counter(r for m in slow_server.handler.messages for r in m.rcpt_tos)
    in_flight = {sid for sid, status in room.ledger_rows().items() if status == "sending"}
    assert len(in_flight) <= CONNECTIONS
    assert len(first) < len(room.emails)  # it really was stopped half-way

    result = room.cli("send")
    assert result.returncode == 0, result.stderr
    total = Counter(r for m in slow_server.handler.messages for r in m.rcpt_tos)
    assert sorted(total) == sorted(room.emails)  # nobody skipped
    doubled = {address for address, n in total.items() if n > 1}
    assert all(n <= 2 for n in total.values())
    assert len(doubled) <= CONNECTIONS
    ids = {room.store.get(a).id for a in doubled}
    assert ids <= in_flight  # only a message in flight at the kill can arrive twice
    assert set(room.ledger_rows().values()) == {"sent"}


def test_sigint_finishes_what_is_in_flight_records_it_and_summarises(tmp_path, slow_server):
    room = newsroom(tmp_path, slow_server)
    process = room.popen("send")
    wait_for(lambda: len(slow_server.handler.messages) >= 10)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "Traceback" not in err
    assert "interrupted" in err and "sent" in out
    rows = room.ledger_rows()
    assert "sending" not in rows.values()
    sent_first = Counter(r for m in slow_server.handler.messages for r in m.rcpt_tos)
    assert sum(1 for s in rows.values() if s == "sent") == len(sent_first)

    result = room.cli("send")
    assert result.returncode == 0, result.stderr
    total = Counter(r for m in slow_server.handler.messages for r in m.rcpt_tos)
    assert sorted(total) == sorted(room.emails) and set(total.values()) == {1}  # no duplicate at all


def test_a_second_send_of_the_same_edition_refuses_while_one_runs(tmp_path, slow_server):
    room = newsroom(tmp_path, slow_server, subscribers=80)
    process = room.popen("send")
    try:
        wait_for(lambda: len(slow_server.handler.messages) >= 3)
        second = room.cli("send")
        assert second.returncode == 2
        assert "another 'digest send'" in second.stderr
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    # Once the first is gone, the lock is free again (and the kernel frees it even after SIGKILL).
    again = room.cli("send")
    assert again.returncode == 0, again.stderr


def test_a_ledger_that_cannot_be_written_stops_the_run_cleanly(tmp_path):
    """A database locked by someone else for longer than the busy timeout: the run stops with one
    clear error instead of sending on unrecorded, and the next run finishes the job."""
    import sqlite3
    import threading

    from digest.send import LedgerError
    from delivery import Newsroom as Room

    room = Room(tmp_path, subscribers=12)
    locked = threading.Event()
    release = threading.Event()

    class LockingRecorder(Recorder):
        async def handle_DATA(self, server, session, envelope):
            reply = await super().handle_DATA(server, session, envelope)
            if len(self.messages) == 3 and not locked.is_set():
                def hold():
                    conn = sqlite3.connect(room.settings.database, timeout=1)
                    conn.execute("BEGIN EXCLUSIVE")
                    locked.set()
                    release.wait(20)
                    conn.rollback()
                    conn.close()
                threading.Thread(target=hold, daemon=True).start()
                locked.wait(5)
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
