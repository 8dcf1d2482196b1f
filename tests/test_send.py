"""Delivery against real servers: aiosmtpd (misbehaving on chosen commands) and Postfix's smtp-sink."""
from __future__ import annotations

import re

import lxml.html
import pytest

from digest.pipeline.render import Renderer

from support.cli import digest
from support.mail import parse
from support.newsroom import Newsroom
from support.paths import EXAMPLES
from support.smtp import Holding, Recorder, SmtpServer, SmtpSink


def run(newsroom: Newsroom, **kwargs):
    return newsroom.sender(**kwargs).run()


# -- the outbox: the embedded default ---------------------------------------------------------------

def test_without_smtp_every_active_subscriber_gets_one_eml_in_the_outbox(tmp_path):
    room = Newsroom(tmp_path, subscribers=9)
    room.store.unsubscribe(room.emails[0])
    report = run(room)
    files = sorted((tmp_path / "outbox" / report.edition).glob("*.eml"))
    assert report.outcomes["sent"] == 8 and len(files) == 8
    recipients = sorted(parse(f.read_bytes())["To"].addresses[0].addr_spec for f in files)
    assert recipients == sorted(room.emails[1:])
    assert set(room.ledger_rows().values()) == {"sent"}


def test_a_second_run_sends_nothing_new_and_says_so(tmp_path):
    room = Newsroom(tmp_path, subscribers=5)
    first = room.cli("send")
    assert first.returncode == 0, first.stderr
    second = room.cli("send")
    assert second.returncode == 0
    assert "Nothing new to send" in second.stdout and "5 subscribers already" in second.stdout
    assert len(list((tmp_path / "outbox").rglob("*.eml"))) == 5


def test_a_new_subscriber_after_a_run_gets_the_edition_on_the_next_run(tmp_path):
    room = Newsroom(tmp_path, subscribers=3)
    run(room)
    room.store.add("late@example.com", locale="fr")
    report = run(room)
    assert report.outcomes["sent"] == 1 and report.already_sent == 3


# -- the message ------------------------------------------------------------------------------------

def test_each_message_has_one_recipient_list_headers_and_a_working_token(tmp_path, smtp_server):
    room = Newsroom(tmp_path, subscribers=6)
    room.with_smtp(smtp_server.port)
    report = run(room)
    assert report.outcomes["sent"] == 6
    by_rcpt = smtp_server.handler.by_recipient()
    assert sorted(by_rcpt) == sorted(room.emails)
    for address, received in by_rcpt.items():
        assert len(received) == 1 and received[0].rcpt_tos == [address]
        msg = parse(received[0].data)
        assert msg["To"].addresses[0].addr_spec == address
        for name in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Id",
                     "List-Unsubscribe", "List-Unsubscribe-Post"):
            assert len(msg.get_all(name)) == 1, name
        assert "Cc" not in msg and "Bcc" not in msg
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        links = re.findall(r"<([^>]+)>", msg["List-Unsubscribe"])
        assert links[0].startswith("https://lequotidien.example.ma/digest/unsubscribe/")
        token = links[0].rsplit("/", 1)[1]
        subscriber = room.store.get(address)
        assert room.tokens.verify(token) == subscriber.id
        assert address not in msg["List-Unsubscribe"]
        html = msg.get_body(("html",)).get_content()
        text = msg.get_body(("plain",)).get_content()
        assert links[0] in html and links[0] in text
        raw = received[0].data
        assert max(len(line) for line in raw.splitlines()) <= 998


def test_message_ids_are_deterministic_per_edition_and_subscriber(tmp_path):
    first = Newsroom(tmp_path / "a", subscribers=4)
    second = Newsroom(tmp_path / "b", subscribers=4)
    ids = []
    for room in (first, second):
        report = run(room)
        files = sorted((room.tmp / "outbox" / report.edition).glob("*.eml"))
        ids.append([parse(f.read_bytes())["Message-ID"] for f in files])
    assert ids[0] == ids[1] and len(set(ids[0])) == 4


def test_hostile_names_and_titles_cannot_add_headers(tmp_path, smtp_server):
    from sqlalchemy import update

    from subscribers.schema import subscribers

    room = Newsroom(tmp_path, subscribers=1)
    # A name that went around validation (an older import, a direct write) still cannot inject.
    with room.store.engine.begin() as conn:
        conn.execute(update(subscribers).values(name="Eve\r\nBcc: victim@example.org\r\nX-Evil: 1"))
    room.with_smtp(smtp_server.port)
    run(room)
    msg = parse(smtp_server.handler.messages[0].data)
    assert msg.get_all("Bcc") is None and msg.get_all("X-Evil") is None
    assert "victim@example.org" in str(msg["To"])  # kept as text of the display name, on one line
    assert smtp_server.handler.messages[0].rcpt_tos == [room.emails[0]]


# -- personal ---------------------------------------------------------------------------------------

def _sections(msg) -> list[str]:
    root = lxml.html.document_fromstring(msg.get_body(("html",)).get_content())
    return [h.text_content().strip() for h in root.xpath("//h2[contains(@class,'rubric-title')]")]


def test_each_reader_gets_the_rubrics_and_language_they_chose(tmp_path, smtp_server):
    room = Newsroom(tmp_path, subscribers=0)
    room.store.add("eco-sport@example.com", locale="fr", rubrics=frozenset({"economie", "sport"}))
    room.store.add("english@example.com", locale="en")
    room.store.add("arabic@example.com", locale="ar", rubrics=frozenset({"politique"}))
    room.with_smtp(smtp_server.port)
    run(room)
    got = {a: parse(r[0].data) for a, r in smtp_server.handler.by_recipient().items()}
    lead = room.day_edition.edition.leads[0].item.title

    eco = got["eco-sport@example.com"]
    assert [s for s in _sections(eco) if s != "Plus sur le web"] == ["Économie", "Sport"]
    assert lead in eco.get_body(("html",)).get_content()

    english = got["english@example.com"]
    html = english.get_body(("html",)).get_content()
    assert 'lang="en"' in html and "Unsubscribe" in html and "Sunday, November 29, 2026" in html
    assert "Economy" in _sections(english)

    arabic = got["arabic@example.com"]
    html = arabic.get_body(("html",)).get_content()
    assert 'dir="rtl"' in html and 'lang="ar"' in html and "إلغاء الاشتراك" in html
    assert _sections(arabic)[:1] == ["سياسة"]


def test_mjml_compiles_once_per_language_not_once_per_variant_or_recipient(tmp_path, monkeypatch):
    import digest.pipeline.render as render

    calls = []
    original = render.mjml.mjml2html

    def counting(source, **kwargs):
        calls.append(1)
        return original(source, **kwargs)

    monkeypatch.setattr(render.mjml, "mjml2html", counting)
    room = Newsroom(tmp_path, subscribers=36)  # 3 locales × 4 rubric choices = 12 variants
    report = run(room)
    assert report.outcomes["sent"] == 36
    # One compile per language: each rubric choice is cut from its language's pieces (render/pieces.py).
    assert len(calls) == 3 and report.variants == 12


# -- SMTP outcomes ----------------------------------------------------------------------------------

@pytest.fixture(params=[False, True], ids=["one at a time", "pipelining"])
def relay(request):
    """aiosmtpd answering each command in turn, and offering PIPELINING (as Postfix does): then a
    message's envelope goes in one write, and with the previous message's final dot."""
    server = SmtpServer(Recorder(pipelining=request.param))
    try:
        yield server
    finally:
        server.stop()


def test_a_4xx_is_retried_with_backoff_in_the_same_run(tmp_path, relay):
    room = Newsroom(tmp_path, subscribers=3)
    relay.handler.rcpt[room.emails[1]] = ["451 4.7.1 Greylisted, try again", None]
    room.with_smtp(relay.port)
    report = run(room)
    assert report.outcomes["sent"] == 3 and report.retried == 1
    assert relay.handler.attempts[room.emails[1]] == 2
    assert len(relay.handler.by_recipient()[room.emails[1]]) == 1


@pytest.mark.parametrize("reply", ["450 4.2.0 Mailbox busy", "452 4.5.3 Too many recipients", "454 4.7.0 TLS not available"])
def test_a_lasting_4xx_is_deferred_to_the_next_run_after_bounded_retries(tmp_path, relay, reply):
    room = Newsroom(tmp_path, subscribers=2)
    relay.handler.rcpt[room.emails[0]] = [reply]
    room.with_smtp(relay.port)
    room.with_delivery(retries=3, retry_base_seconds=0.02)
    report = run(room)
    assert report.outcomes == {"sent": 1, "deferred": 1}
    assert relay.handler.attempts[room.emails[0]] == 3
    rows = room.ledger_rows()
    assert rows[room.store.get(room.emails[0]).id] == "deferred"
    assert room.store.get(room.emails[0]).status == "active"  # a 4xx never bounces anyone

    # The next run, once the retry time has come, delivers it.
    relay.handler.rcpt.clear()
    room.with_delivery(retry_later_minutes=0.0001)
    from datetime import timedelta

    from sqlalchemy import update

    from digest.delivery.queue import utcnow
    from digest.delivery.schema import deliveries

    with room.store.engine.begin() as conn:
        conn.execute(update(deliveries).values(not_before=utcnow() - timedelta(seconds=1)))
    again = run(room)
    assert again.outcomes == {"sent": 1} and again.already_sent == 1


def test_a_5xx_fails_for_good_and_bounces_the_subscriber(tmp_path, relay):
    room = Newsroom(tmp_path, subscribers=3)
    relay.handler.rcpt[room.emails[2]] = ["550 5.1.1 No such user"]
    room.with_smtp(relay.port)
    report = run(room)
    assert report.outcomes == {"sent": 2, "failed": 1} and report.bounced == 1
    assert relay.handler.attempts[room.emails[2]] == 1  # never retried
    assert room.store.get(room.emails[2]).status == "bounced"
    # Never sent to again, not even for the next edition's ledger.
    assert run(room).outcomes == {}


def test_421_on_data_reconnects_and_goes_on(tmp_path, relay):
    room = Newsroom(tmp_path, subscribers=4)
    relay.handler.data_replies = [None, "421 4.3.2 Shutting down", None]
    room.with_smtp(relay.port, connections=1)
    report = run(room)
    assert report.outcomes["sent"] == 4
    assert sorted(relay.handler.by_recipient()) == sorted(room.emails)
    assert relay.handler.sessions >= 2  # it connected again after the 421


@pytest.mark.parametrize(("deadline", "timeout"), [(0.5, 120.0), (120.0, 0.5)], ids=["message deadline", "reply timeout"])
def test_a_server_that_stops_answering_hits_the_deadline_and_defers(tmp_path, deadline, timeout):
    # The relay never answers DATA until the test ends. Either bound ends the message: the message's
    # deadline (the reply timeout far away), or the timeout of one reply (the deadline far away). The
    # bound on the run's time is loose on purpose (it holds the set-up, rendering, one deadline; about
    # 1 s on an idle machine): it only tells the 0.5 s bound from the 120 s one, on a busy machine.
    server = SmtpServer(Holding())
    try:
        room = Newsroom(tmp_path, subscribers=1)
        room.with_smtp(server.port, deadline_seconds=deadline, timeout_seconds=timeout, connections=1)
        room.with_delivery(retries=1)
        report = run(room)
    finally:
        server.stop()
    assert report.outcomes == {"deferred": 1}
    assert report.elapsed < 60.0
    assert server.handler.messages == []


def test_starttls_required_never_falls_back_to_plaintext(tmp_path, smtp_server):
    room = Newsroom(tmp_path, subscribers=1)
    room.with_smtp(smtp_server.port, tls="starttls")  # aiosmtpd here offers no STARTTLS
    room.with_delivery(retries=1)
    report = run(room)
    assert report.outcomes == {"deferred": 1}
    assert smtp_server.handler.messages == []


def test_tls_none_is_refused_for_a_server_that_is_not_on_this_machine():
    from digest.core.config import parse as parse_settings
    from digest.core.errors import ConfigError

    with pytest.raises(ConfigError, match="smtp.tls"):
        parse_settings({"smtp": {"host": "smtp.example.ma", "tls": "none"}})
    assert parse_settings({"smtp": {"host": "127.0.0.1", "tls": "none", "port": 25}}).smtp.tls == "none"


def test_the_password_comes_from_the_environment_and_is_never_printed(monkeypatch):
    from digest.core.config import parse as parse_settings
    from digest.core.errors import ConfigError

    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cr3t-value")
    smtp = parse_settings({"smtp": {"host": "smtp.example.ma", "username": "digest", "password_env": "TEST_SMTP_PASSWORD"}}).smtp
    assert smtp.resolve_password() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(smtp)
    monkeypatch.delenv("TEST_SMTP_PASSWORD")
    # Loading does not need it (build and serve run without the password); connecting does.
    smtp = parse_settings({"smtp": {"host": "smtp.example.ma", "username": "digest", "password_env": "TEST_SMTP_PASSWORD"}}).smtp
    with pytest.raises(ConfigError, match="TEST_SMTP_PASSWORD"):
        smtp.resolve_password()


# -- Postfix's smtp-sink ----------------------------------------------------------------------------

def test_smtp_sink_receives_every_message(tmp_path):
    sink = SmtpSink(dump=True)
    try:
        room = Newsroom(tmp_path, subscribers=10)
        room.with_smtp(sink.port, connections=3, messages_per_connection=4)
        report = run(room)
        dumped = sink.messages()
    finally:
        sink.stop()
    assert report.outcomes == {"sent": 10}
    assert len(dumped) == 10
    # Each dump is the envelope smtp-sink saw, then the message as we sent it.
    recipients = sorted(re.search(rb"(reader\d+@example\.com)", d).group(1).decode() for d in dumped)
    assert recipients == sorted(room.emails)


@pytest.mark.parametrize(
    "options, outcome, status",
    [
        (("-r", "RCPT"), "deferred", "active"),  # 450 4.3.0: try later
        (("-f", "RCPT", "-B", "550 5.1.1 Error: no such user"), "failed", "bounced"),  # the address is gone
        (("-f", "RCPT"), "failed", "active"),  # 500 5.3.0: refused, but nothing says the address is bad
        (("-q", "DATA"), "deferred", "active"),  # hangs up
    ],
)
def test_smtp_sink_failures(tmp_path, options, outcome, status):
    sink = SmtpSink(*options)
    try:
        room = Newsroom(tmp_path, subscribers=3)
        room.with_smtp(sink.port)
        room.with_delivery(retries=2, retry_base_seconds=0.01)
        report = run(room)
    finally:
        sink.stop()
    assert report.outcomes == {outcome: 3}
    assert {room.store.get(a).status for a in room.emails} == {status}


# -- editors and jobs ------------------------------------------------------------------------------

def test_test_to_sends_one_copy_and_leaves_the_ledger_alone(tmp_path, smtp_server):
    room = Newsroom(tmp_path, subscribers=3)
    room.config.write_text(room.config.read_text() + f'\n[smtp]\nhost = "127.0.0.1"\nport = {smtp_server.port}\ntls = "none"\n')
    result = room.cli("send", "--test-to", "editor@lequotidien.example.ma")
    assert result.returncode == 0, result.stderr
    assert [m.rcpt_tos for m in smtp_server.handler.messages] == [["editor@lequotidien.example.ma"]]
    assert room.ledger_rows() == {}


def test_dry_run_renders_everything_sends_nothing_records_nothing(tmp_path):
    room = Newsroom(tmp_path, subscribers=12)
    result = room.cli("send", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "12 " in result.stdout and "nothing sent" in result.stdout
    assert room.ledger_rows() == {}
    assert not (tmp_path / "outbox").exists()


def test_renderer_is_not_touched_per_recipient(tmp_path, monkeypatch):
    """Personalising a message is a string fill, not a render."""
    room = Newsroom(tmp_path, subscribers=24)
    sender = room.sender()
    calls = []
    original = Renderer.render
    monkeypatch.setattr(Renderer, "render", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    from digest.delivery.send import dry_run

    result = dry_run(sender)
    assert result.messages == 24 and len(calls) == 12


def test_the_quick_start_chain_from_the_readme(tmp_path):
    """Import the example subscribers, send to the outbox, run again: what the README promises."""
    import shutil

    room = Newsroom(tmp_path, subscribers=0)
    shutil.copy(EXAMPLES / "subscribers.csv", tmp_path / "subscribers.csv")
    imported = digest("subscribers", "import", str(tmp_path / "subscribers.csv"), "-c", str(room.config))
    assert imported.returncode == 0, imported.stderr
    assert "24 created" in imported.stdout
    counted = digest("subscribers", "count", "-c", str(room.config))
    assert "active" in counted.stdout and "21" in counted.stdout
    sent = room.cli("send")
    assert sent.returncode == 0, sent.stderr
    assert "sent                21" in sent.stdout.replace("  ", "  ")
    assert len(list((tmp_path / "outbox").rglob("*.eml"))) == 21
    again = room.cli("send")
    assert again.returncode == 0 and "Nothing new to send" in again.stdout


def test_the_mailto_unsubscribe_message_unsubscribes_by_its_token(tmp_path, smtp_server):
    """What a mail app sends to the List-Unsubscribe mailto, piped to `--from-message`."""
    from email.message import EmailMessage
    from urllib.parse import unquote, urlsplit

    room = Newsroom(tmp_path, subscribers=3)
    room.with_smtp(smtp_server.port)
    run(room)
    target = room.emails[1]
    received = parse(smtp_server.handler.by_recipient()[target][0].data)
    mailto = re.findall(r"<(mailto:[^>]+)>", received["List-Unsubscribe"])[0]
    parts = urlsplit(mailto)
    request = EmailMessage()
    request["From"] = "someone-else@example.net"  # the token decides, not a forgeable From
    request["To"] = parts.path
    request["Subject"] = unquote(parts.query.split("subject=", 1)[1])
    request.set_content("")
    result = digest("subscribers", "unsubscribe", "--from-message", "-c", str(room.config), input=bytes(request))
    assert result.returncode == 0, result.stderr
    assert room.store.get(target).status == "unsubscribed"
    assert {room.store.get(a).status for a in room.emails if a != target} == {"active"}


def test_a_hostile_title_in_the_subject_cannot_add_a_header(tmp_path, smtp_server):
    """A feature whose title carries CR/LF becomes the lead, so the subject: still one header."""
    from dataclasses import replace

    from digest.core.config import SourceSpec

    feature = tmp_path / "hostile.md"
    feature.write_text('---\ntitle: "Alerte\\r\\nBcc: victim@example.com\\r\\nX-Evil: 1"\n'
                       "published: 2026-11-29T23:00:00+01:00\nfeatured: true\npin: 1\n---\n\n" + "Un paragraphe de texte. " * 30,
                       encoding="utf-8")
    room = Newsroom(tmp_path, subscribers=2)
    room.settings = replace(room.settings, sources=room.settings.sources + (SourceSpec("hostile", str(feature)),))
    room.with_smtp(smtp_server.port)
    run(room)
    for received in smtp_server.handler.messages:
        msg = parse(received.data)
        assert msg.get_all("Bcc") is None and msg.get_all("X-Evil") is None
        # French typography puts a no-break space before the colon; the text stays in the one header.
        assert "Bcc\u00a0: victim@example.com" in msg["Subject"] and "\n" not in msg["Subject"]
        assert received.rcpt_tos in ([room.emails[0]], [room.emails[1]])


# -- a relay that cannot be used: configuration errors stop the run, nobody is failed or bounced ----

def test_a_refused_login_stops_the_run_and_fails_nobody(tmp_path, monkeypatch):
    from aiosmtpd.smtp import AuthResult

    accept = {"ok": False}
    handler = Recorder()
    server = SmtpServer(handler, auth_require_tls=False,
                        authenticator=lambda *args: AuthResult(success=accept["ok"], handled=False,
                                                               message=None if accept["ok"] else "535 5.7.8 Authentication credentials invalid"))
    port = server.port
    try:
        monkeypatch.setenv("TEST_RELAY_PASSWORD", "wrong")
        room = Newsroom(tmp_path, subscribers=5)
        room.with_smtp(port, username="digest", password_env="TEST_RELAY_PASSWORD", connections=2)
        report = run(room)
        assert len(report.errors) == 1 and "535" in report.errors[0], report.errors
        assert report.outcomes["failed"] == 0 and report.outcomes["sent"] == 0 and not report.ok
        assert {room.store.get(a).status for a in room.emails} == {"active"}
        assert handler.messages == []

        accept["ok"] = True  # the newsroom fixes its password: the next run sends everything
        again = run(room)
        assert again.ok and again.outcomes["sent"] == 5
    finally:
        server.stop()


def test_an_unreachable_server_stops_the_run_after_bounded_retries(tmp_path):
    from support.ports import refusing_port

    room = Newsroom(tmp_path, subscribers=4)
    with refusing_port() as port:  # nobody listens there, nor can start to during the run
        room.with_smtp(port, connections=2)
        room.with_delivery(retries=2, retry_base_seconds=0.01)
        report = run(room)
    assert report.errors and "cannot reach 127.0.0.1" in report.errors[0]
    assert not report.ok and report.outcomes["failed"] == 0
    assert set(room.ledger_rows().values()) <= {"pending", "deferred"}
    assert report.left == 4


def test_a_policy_refusal_fails_the_message_without_bouncing_the_reader(tmp_path, relay):
    room = Newsroom(tmp_path, subscribers=2)
    relay.handler.rcpt[room.emails[0]] = ["554 5.7.1 Message refused by policy"]
    room.with_smtp(relay.port)
    report = run(room)
    assert report.outcomes == {"sent": 1, "failed": 1} and report.bounced == 0
    assert room.store.get(room.emails[0]).status == "active"


def test_deferred_messages_not_yet_due_are_reported_not_hidden(tmp_path, smtp_server):
    room = Newsroom(tmp_path, subscribers=2)
    smtp_server.handler.rcpt[room.emails[0]] = ["451 4.7.1 Try again later"]
    room.config.write_text(room.config.read_text() + f'\n[smtp]\nhost = "127.0.0.1"\nport = {smtp_server.port}\ntls = "none"\n')
    first = room.cli("send")
    assert first.returncode == 1 and "left" in first.stdout
    second = room.cli("send")
    assert second.returncode == 1
    assert "Nothing due yet: 1 messages" in second.stdout and "(1 deferred)" in second.stdout


def test_a_mailto_message_without_a_valid_token_changes_nothing(tmp_path):
    """Anyone can write anyone's From: address; only the signed token unsubscribes."""
    from email.message import EmailMessage

    room = Newsroom(tmp_path, subscribers=2)
    request = EmailMessage()
    request["From"] = room.emails[0]
    request["To"] = "unsubscribe@lequotidien.example.ma"
    request["Subject"] = "unsubscribe"
    request.set_content("")
    result = digest("subscribers", "unsubscribe", "--from-message", "-c", str(room.config), input=bytes(request))
    assert result.returncode != 0 and b"no valid unsubscribe token" in result.stderr
    assert b"Traceback" not in result.stderr
    assert room.store.get(room.emails[0]).status == "active"


@pytest.mark.parametrize("pipelining", [False, True], ids=["one at a time", "pipelining"])
def test_when_the_relay_goes_away_mid_run_the_summary_matches_the_ledger(tmp_path, pipelining):
    """Messages cut off in the middle of their transaction are deferred in the ledger, and the
    summary counts them so: what it prints is what the next run will find."""
    import threading
    from collections import Counter

    gone = threading.Event()

    class Vanishing(Recorder):
        async def handle_DATA(self, server, session, envelope):
            if len(self.messages) >= 5 and not gone.is_set():
                gone.set()
                # The relay goes away while this transaction (and the other connection's) is open.
                threading.Thread(target=relay.stop, daemon=True).start()
                await asyncio.sleep(30)
            return await super().handle_DATA(server, session, envelope)

    import asyncio

    relay = SmtpServer(Vanishing(pipelining=pipelining))
    room = Newsroom(tmp_path, subscribers=20)
    room.with_smtp(relay.port, connections=2)
    room.with_delivery(retries=3, retry_base_seconds=0.2)
    try:
        report = run(room)
    finally:
        if not gone.is_set():
            relay.stop()
    ledger = Counter(room.ledger_rows().values())
    assert report.errors and not report.ok  # the run stopped on an unreachable relay
    assert report.outcomes["sent"] == ledger["sent"] == len(relay.handler.messages)
    assert report.outcomes["deferred"] == ledger["deferred"] >= 1
    assert report.left == ledger["pending"] + ledger["deferred"] + ledger["sending"] == 20 - ledger["sent"]


def test_a_run_with_nothing_due_renders_nothing(tmp_path, monkeypatch):
    room = Newsroom(tmp_path, subscribers=6)
    assert run(room).outcomes["sent"] == 6
    calls = []
    original = Renderer.render
    monkeypatch.setattr(Renderer, "render", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    again = room.sender().run()
    assert again.due == 0 and again.variants == 0 and calls == []


def test_a_second_run_looks_at_the_ledger_before_reading_any_source(tmp_path):
    room = Newsroom(tmp_path, subscribers=4)
    assert room.cli("send").returncode == 0
    # The sources are gone: a run that had to gather would name them; one that reads the ledger first does not.
    room.config.write_text(room.config.read_text().replace(f'path = "{EXAMPLES}/', f'path = "{tmp_path}/gone/'))
    again = room.cli("send")
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"Nothing new to send: edition {room.sender().edition} has gone to 4 subscribers already.\n"
    assert again.stderr == ""


def test_a_dry_run_of_an_edition_already_sent_says_so(tmp_path):
    room = Newsroom(tmp_path, subscribers=5)
    before = room.cli("send", "--dry-run")
    assert "a real run now would send 5: 0 sent already, 0 due later, 5 new readers" in before.stdout
    assert room.cli("send").returncode == 0
    after = room.cli("send", "--dry-run")
    assert after.returncode == 0
    assert "a real run now would send 0: 5 sent already" in after.stdout


def test_an_empty_subscriber_list_is_refused(tmp_path):
    room = Newsroom(tmp_path, subscribers=0)
    result = room.cli("send")
    assert result.returncode == 2
    assert "the subscriber list in" in result.stderr and "is empty: nothing to send" in result.stderr
    assert not (tmp_path / "outbox").exists()
