"""Consent on record from the command line and the delivery: every path that changes a reader's state
writes its row (add, import, unsubscribe by an editor or by mailto, remove, a bounce); `history` prints
them; `export --history` writes them; `erase` keeps only a keyed hash, which import and add respect;
pending sign-ups are counted, listed and left out of an export."""
from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from digest.cli.subscribers import subscribers
from digest.core.errors import StoreError
from subscribers.consent import Origin
from subscribers.signups import Limits, Request
from subscribers.store import Store
from subscribers.tokens import load_keys

from support.cli import digest
from support.newsroom import Newsroom
from support.smtp import SmtpServer


def cli(room: Newsroom, *args: str, input: str | bytes | None = None):
    return CliRunner().invoke(subscribers, [*args, "-c", str(room.config)], input=input, catch_exceptions=False)


def sign_up(room: Newsroom, email: str) -> None:
    """A sign-up as the form makes it (its limits taken), waiting for its confirmation."""
    room.store.with_keys(*load_keys(room.settings.secret_file))
    done = room.store.request_signup(Request(email, "", "fr", frozenset(), "UTC", "1", "192.0.2.0/24"),
                                     Origin("form", "test", "1", "192.0.2.0/24"), Limits())
    assert done.outcome == "confirm"


def test_each_path_that_changes_a_state_is_on_record_and_history_prints_it(tmp_path):
    room = Newsroom(tmp_path, subscribers=2)
    assert cli(room, "add", "omar@example.ma", "--rubric", "sport").exit_code == 0
    (tmp_path / "list.csv").write_text("email,status\nomar@example.ma,unsubscribed\nlina@example.ma,\n")
    assert cli(room, "import", str(tmp_path / "list.csv")).exit_code == 0
    token = room.tokens.make(room.store.get(room.emails[0]).id)
    mail = f"From: a@b.example\r\nSubject: unsubscribe {token}\r\n\r\n".encode()
    assert cli(room, "unsubscribe", "--from-message", input=mail).exit_code == 0
    assert cli(room, "unsubscribe", room.emails[1]).exit_code == 0
    assert cli(room, "remove", "lina@example.ma", "--yes").exit_code == 0

    omar = [(e.event, e.channel, e.source) for e in room.store.history("omar@example.ma")]
    assert omar == [("added", "cli", "digest subscribers add"),
                    ("unsubscribed", "import", f"digest subscribers import {tmp_path / 'list.csv'}")]
    assert [(e.event, e.channel) for e in room.store.history(room.emails[0])][-1] == ("unsubscribed", "mailto")
    assert [(e.event, e.channel) for e in room.store.history(room.emails[1])][-1] == ("unsubscribed", "cli")
    # Removed by an editor: the record goes, its history (with the removal) stays.
    assert room.store.get("lina@example.ma") is None
    assert [e.event for e in room.store.history("lina@example.ma")] == ["imported", "removed"]

    shown = cli(room, "history", "omar@example.ma")
    assert shown.exit_code == 0
    lines = shown.stdout.splitlines()
    assert len(lines) == 2 and "added" in lines[0] and "digest subscribers add" in lines[0]
    assert '"status": "unsubscribed"' in lines[1]
    as_json = json.loads(cli(room, "history", "omar@example.ma", "--format", "json").stdout)
    assert [e["event"] for e in as_json["history"]] == ["added", "unsubscribed"] and as_json["erased_at"] is None
    unknown = cli(room, "history", "nobody@example.ma")
    assert unknown.exit_code == 2 and "has no history" in unknown.stderr


def test_a_bounce_recorded_by_the_delivery_is_on_record(tmp_path):
    smtp = SmtpServer()
    try:
        room = Newsroom(tmp_path, subscribers=2)
        smtp.handler.rcpt[room.emails[1]] = ["550 5.1.1 No such user"]
        room.with_smtp(smtp.port)
        report = room.sender().run()
    finally:
        smtp.stop()
    assert report.bounced == 1
    last = room.store.history(room.emails[1])[-1]
    assert (last.event, last.channel, last.detail) == ("bounced", "delivery", {"status": "bounced", "was": "active"})


def test_export_history_writes_every_change_and_neutralises_formulas(tmp_path):
    room = Newsroom(tmp_path, subscribers=1)
    room.store.add("=cmd@example.ma", by=Origin("cli", "=HYPERLINK(\"x\")"))
    out = tmp_path / "history.csv"
    result = cli(room, "export", "--history", str(out))
    assert result.exit_code == 0 and "exported 2 changes" in result.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["event"] for r in rows] == ["added", "added"]
    assert rows[1]["source"] == "'=HYPERLINK(\"x\")" and rows[1]["email"] == "'=cmd@example.ma"
    assert cli(room, "export", "--history", "--status", "active").exit_code == 2


def test_pending_sign_ups_are_counted_listed_and_left_out_of_an_export_and_an_import(tmp_path):
    room = Newsroom(tmp_path, subscribers=1)
    sign_up(room, "waiting@example.ma")
    assert cli(room, "count").stdout.split() == ["active", "1", "unsubscribed", "0", "bounced", "0", "pending", "1",
                                                 "total", "2"]
    assert "waiting@example.ma" in cli(room, "list", "--status", "pending").stdout
    assert "waiting@example.ma" not in cli(room, "export").stdout
    assert "waiting@example.ma" in cli(room, "export", "--status", "pending").stdout
    (tmp_path / "p.csv").write_text("email,status\nnew@example.ma,pending\nwaiting@example.ma,active\n")
    imported = cli(room, "import", str(tmp_path / "p.csv"))
    assert imported.exit_code == 1 and "status pending is the sign-up form's" in imported.stdout
    assert "waiting@example.ma stays pending" in imported.stdout  # only the reader can confirm
    assert room.store.get("waiting@example.ma").status == "pending"
    added = cli(room, "add", "waiting@example.ma")
    assert added.exit_code == 2 and "they signed up and have not confirmed yet" in added.stderr


def test_erase_keeps_only_a_keyed_hash_and_neither_import_nor_add_brings_the_reader_back(tmp_path):
    room = Newsroom(tmp_path, subscribers=2)
    reader = room.emails[0]
    erased = digest("subscribers", "erase", reader, "--yes", "-c", str(room.config))
    assert erased.returncode == 0 and erased.stdout.strip() == f"erased {reader}"
    assert room.store.get(reader) is None and room.store.history(reader) == []
    history = digest("subscribers", "history", reader, "-c", str(room.config))
    assert history.returncode == 0 and "was erased at the reader's request on" in history.stderr
    (tmp_path / "again.csv").write_text(f"email\n{reader}\n")
    again = digest("subscribers", "import", str(tmp_path / "again.csv"), "-c", str(room.config))
    assert again.returncode == 1 and f"line 2: {reader} was erased at the reader's request" in again.stdout
    add = digest("subscribers", "add", reader, "-c", str(room.config))
    assert add.returncode == 2 and add.stderr.startswith("digest: error: ") and "erased" in add.stderr
    assert room.store.get(reader) is None
    # Without the keys, a store cannot tell an erased address: it refuses rather than let one back in.
    keyless = Store.open(room.settings.database)
    with pytest.raises(StoreError, match="erased readers are on record"):
        keyless.add(reader)
    keyless.close()
