"""The delivery seam: a transport is anything that keeps the protocol of transports/base.py. Registered
by name and chosen in digest.toml, it gets every due message once, and the ledger records what it says."""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from email import message_from_bytes
from pathlib import Path

import pytest

from digest.core.config import Settings
from digest.core.errors import ConfigError
from digest.delivery import transports
from digest.delivery.transports import Envelope, Kind, Outcome

from support.newsroom import Newsroom


class Notebook:
    """A transport of our own: it keeps what it is given, refuses one address for good and defers another."""

    wire = False
    concurrency = 3
    rate = 0.0

    def __init__(self, refuse: str, busy: str) -> None:
        self.where = "a notebook"
        self.refuse, self.busy = refuse, busy
        self.given: list[tuple[Envelope, bytes]] = []
        self.closed = False

    async def send(self, envelope: Envelope, message: bytes) -> Outcome:
        self.given.append((envelope, message))
        if envelope.recipient == self.refuse:
            return Outcome(Kind.FAILED, 550, "5.1.1 no such mailbox", bounce=True)
        if envelope.recipient == self.busy:
            return Outcome(Kind.DEFERRED, 451, "4.3.0 try later")
        return Outcome(Kind.SENT, 250, "kept")

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def notebook(monkeypatch):
    made: list[Notebook] = []

    def open_notebook(settings: Settings, box: str, folder: Path | None = None) -> Notebook:
        made.append(Notebook("reader0001@example.com", "reader0002@example.com"))
        return made[-1]

    monkeypatch.setitem(transports.TRANSPORTS, "notebook", open_notebook)  # the one registry line
    return made


def test_a_registered_transport_chosen_by_name_delivers_and_the_ledger_records_its_outcomes(tmp_path, notebook):
    room = Newsroom(tmp_path, subscribers=9)
    room.settings = replace(room.settings, delivery=replace(room.settings.delivery, transport="notebook",
                                                            retries=1))
    sender = room.sender()
    assert sender.destination() == "a notebook"
    report = sender.run()
    [book] = notebook
    recipients = Counter(envelope.recipient for envelope, _ in book.given)
    assert sorted(recipients) == sorted(room.emails) and set(recipients.values()) == {1}
    assert book.closed
    for envelope, data in book.given:
        assert message_from_bytes(data)["To"].endswith(f"<{envelope.recipient}>")
    assert report.outcomes == {Kind.SENT: 7, Kind.FAILED: 1, Kind.DEFERRED: 1}
    rows = room.ledger_rows()
    assert Counter(rows.values()) == {"sent": 7, "bounced": 1, "deferred": 1}  # the queue names a bounce
    assert room.store.get("reader0001@example.com").status == "bounced"  # through the store


def test_an_unknown_transport_name_is_a_configuration_error(tmp_path):
    room = Newsroom(tmp_path, subscribers=1)
    room.settings = replace(room.settings, delivery=replace(room.settings.delivery, transport="pigeon"))
    with pytest.raises(ConfigError, match="delivery.transport 'pigeon' is unknown"):
        room.sender()
