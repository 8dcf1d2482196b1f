"""Bounces and complaints that arrive after the send: one edition really sent through a real SMTP server
with [bounces] on, then the mail that comes back, in the shapes the field writes it, each built around
one of the messages the server received, taken in by the ledger and by `digest bounces`."""
from __future__ import annotations

import io
import json
import re
import shutil
import tracemalloc
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from digest.core.clock import Clock
from digest.core.config import Dkim, Settings
from digest.delivery.bounces.ledger import BounceLedger
from digest.delivery.bounces.reading import MESSAGE_MAX, Incoming, from_stream
from digest.delivery.bounces.tags import VerpTags
from digest.delivery.compose import Composer
from digest.delivery.editions import Editions
from digest.delivery.personalize import Recipient
from digest.delivery.schema import bounce_events
from subscribers.store import Store
from subscribers.tokens import Tokens

from support import bounces as shapes
from support import imap
from support.bounces import Sent
from support.cli import digest
from support.newsroom import Newsroom
from support.paths import DAY
from support.smtp import SmtpServer

BOUNCES = """
[bounces]
domain = "bounces.lequotidien.example.ma"
complaints_address = "fbl@lequotidien.example.ma"
soft_threshold = 3
soft_half_life_days = 7
"""
EDITION = f"quotidien.lequotidien.example.ma-{DAY.isoformat()}"
VERP = re.compile(r"bounces\+([a-z2-7]{32})@bounces\.lequotidien\.example\.ma")


@dataclass
class Sending:
    room: Newsroom
    sent: dict[str, Sent]  # by recipient
    database: Path


@pytest.fixture(scope="module")
def sending(tmp_path_factory) -> Sending:
    """The example edition sent once to 8 readers through aiosmtpd, [bounces] on; its database kept."""
    tmp = tmp_path_factory.mktemp("sent")
    room = Newsroom(tmp, subscribers=8)
    room.edit_config(lambda text: text + BOUNCES)
    server = SmtpServer()
    try:
        room.with_smtp(server.port)
        report = room.sender().run()
        assert report.ok, report
        received = {m.rcpt_tos[0]: Sent(m.mail_from, m.rcpt_tos[0], m.data) for m in server.handler.messages}
    finally:
        server.stop()
        room.store.close()
    assert sorted(received) == room.emails
    return Sending(room, received, Path(room.settings.database))


@dataclass
class Case:
    settings: Settings
    store: Store
    ledger: BounceLedger
    sent: dict[str, Sent]
    emails: list[str]
    config: Path

    def message(self, i: int = 1) -> Sent:
        return self.sent[self.emails[i]]

    def status(self, i: int = 1) -> str:
        return self.store.get(self.emails[i]).status

    def events(self) -> list[tuple[str, str | None]]:
        with self.store.engine.connect() as conn:
            return [(r.kind, r.status) for r in conn.execute(select(bounce_events).order_by(bounce_events.c.id))]

    def score(self, i: int = 1) -> float:
        from subscribers.schema import subscribers

        with self.store.engine.connect() as conn:
            return conn.execute(select(subscribers.c.bounce_score).where(subscribers.c.email == self.emails[i])).scalar_one()

    def cli(self, *args: str, input: bytes | None = None):
        from support.cli import digest

        return digest(*args, "-c", str(self.config), "--database", self.settings.database, input=input)


@pytest.fixture
def case(sending: Sending, tmp_path: Path):
    """The sent edition's database, copied for this test alone."""
    database = tmp_path / "digest.db"
    shutil.copy(sending.database, database)
    settings = replace(sending.room.settings, database=str(database))
    store = Store.open(database)
    ledger = BounceLedger(settings.bounces, store, sending.room.tokens)
    yield Case(settings, store, ledger, sending.sent, sending.room.emails, sending.room.config)
    store.close()


def take(case: Case, raw: bytes, source: str = "test"):
    return case.ledger.take(Incoming(raw, source))


# -- what goes out --------------------------------------------------------------------------------

def test_each_message_goes_out_with_a_signed_verp_return_path_and_the_feedback_headers(case):
    tags = VerpTags(Tokens(*_keys(case), case.settings.newsletter.list_id), case.settings.bounces)
    seen = set()
    for address, sent in case.sent.items():
        match = VERP.fullmatch(sent.return_path)
        assert match, sent.return_path
        assert len(sent.return_path.split("@")[0]) <= 64
        tag = match.group(1)
        named = tags.verify(tag)
        assert named.edition == EDITION and named.subscriber_id == case.store.get(address).id
        msg = message_from_bytes(sent.data, policy=policy.default)
        assert msg["X-Digest-ID"] == tag and msg["CFBL-Feedback-ID"] == tag
        assert msg["CFBL-Address"] == "fbl@lequotidien.example.ma; report=arf"
        locale = case.store.get(address).locale
        assert msg["Feedback-ID"] == f"{DAY.isoformat()}:{locale}:digest:quotidien.lequotidien.example.ma"
        seen.add(tag)
    assert len(seen) == len(case.sent)  # one reader, one tag
    # Altered by one character, or signed for another newsletter: worth nothing.
    tag = VERP.fullmatch(case.message().return_path).group(1)
    assert tags.verify(tag[:-1] + ("a" if tag[-1] != "a" else "b")) is None
    other = VerpTags(Tokens(*_keys(case), "other.example.ma"), case.settings.bounces)
    assert other.verify(tag) is None


def test_dkim_covers_cfbl_address_the_feedback_id_and_the_tag(case):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    settings = replace(case.settings, dkim=Dkim("lequotidien.example.ma", "digest2026", pem))
    frozen = Editions(case.store).get(EDITION)
    composer = Composer(settings, frozen, Tokens(*_keys(case), settings.newsletter.list_id))
    subscriber = case.store.get(case.emails[1])
    data, _, return_path = composer.compose(subscriber.id, subscriber.email, subscriber.name, subscriber.locale, "")
    signature = message_from_bytes(data, policy=policy.default)["DKIM-Signature"]
    signed = re.search(r"h=([^;]+)", re.sub(r"\s", "", signature)).group(1).lower().split(":")
    assert {"cfbl-address", "cfbl-feedback-id", "x-digest-id", "feedback-id", "list-unsubscribe"} <= set(signed)
    assert VERP.fullmatch(return_path).group(1) in data.decode("ascii", "replace")

    def dns(name, timeout=5):
        import base64

        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    assert dkim.verify(data, dnsfunc=dns)
    # An editor's test copy carries a tag that names nobody.
    template = composer.template(settings.newsletter.locale, "")
    copy = composer.finish(template, Recipient(0, "editor@example.ma", "", "0" * len(template.placeholder),
                                               tag=composer.nobody_tag()), wire=False)
    tags = VerpTags(Tokens(*_keys(case), settings.newsletter.list_id), settings.bounces)
    assert tags.find(copy) is None


# -- what comes back ------------------------------------------------------------------------------

def _delayed(sent: Sent) -> bytes:
    return shapes.postfix(sent, status="4.4.1", action="delayed",
                          diagnostic="connect to mail.example.com[203.0.113.25]:25: Connection timed out")


@pytest.mark.parametrize("shape, kind, status, change", [
    (shapes.postfix, "hard", "5.1.1", "bounced"),
    (shapes.exim, "soft", "5.7.1", None),
    (shapes.sendmail, "soft", "5.2.2", None),
    (shapes.office365, "hard", "5.1.10", "bounced"),  # marked Auto-Submitted: a report all the same
    (shapes.exchange, "hard", None, "bounced"),  # no status at all: "Unknown Recipient"
    (shapes.gmail, "hard", "5.1.1", "bounced"),
    (shapes.yahoo, "hard", "5.0.0", "bounced"),  # "554 … This user doesn't have a yahoo.com account"
    (shapes.qmail, "hard", "5.1.1", "bounced"),
    (shapes.truncated, "hard", "5.1.1", "bounced"),
    (shapes.yahoo_arf, "complaint", None, "unsubscribed"),
    (shapes.microsoft_arf, "complaint", None, "unsubscribed"),  # attributed by X-Digest-ID alone
    (shapes.vacation, "auto-reply", None, None),
    (_delayed, "delayed", "4.4.1", None),
], ids=lambda v: getattr(v, "__name__", None))
def test_each_shape_is_attributed_classified_and_recorded(case, shape, kind, status, change):
    sent = case.message(1)
    taken = take(case, shape(sent))
    assert taken.outcome == "recorded", taken
    assert (taken.finding.kind, taken.finding.status) == (kind, status)
    assert taken.email == sent.recipient and taken.tagged.edition == EDITION
    assert taken.change == change
    assert case.events() == [(kind, status)]
    assert case.status(1) == (change or "active")
    history = case.store.history(sent.recipient)
    if change is None:
        assert history[-1].event == "added"  # nothing on the reader's record
        assert case.score(1) == (1.0 if kind == "soft" else 0.0)
    else:
        last = history[-1]
        assert last.event == change and last.detail["edition"] == EDITION
        if kind == "complaint":
            assert (last.channel, last.detail["reason"], last.detail["feedback_type"]) == ("feedback-loop", "complaint", "abuse")
        else:
            assert (last.channel, last.detail["dsn_status"], last.detail["status"]) == ("delivery", status, "bounced")
    # The other readers are untouched.
    assert [case.status(i) for i in (0, 2, 3)] == ["active"] * 3


def test_the_same_message_twice_from_a_pipe_and_from_a_file_changes_nothing(case, tmp_path):
    sent = case.message(2)
    raw = shapes.sendmail(sent)
    first = case.cli("bounces", "read", "-", input=raw)
    assert first.returncode == 0, first.stderr
    assert f"{sent.recipient}: soft 5.2.2".encode() in first.stdout
    (tmp_path / "bounce.eml").write_bytes(raw)
    again = case.cli("bounces", "read", str(tmp_path / "bounce.eml"))
    assert again.returncode == 0 and "read before, nothing changed" in again.stdout
    assert case.events() == [("soft", "5.2.2")] and case.score(2) == 1.0


def test_piped_mail_that_is_not_ours_is_kept_for_a_person_when_a_maildir_is_named(case, tmp_path):
    """A forged tag and a person's note to the bounce address: neither changes anyone, and with
    keep_unattributed both wait in that Maildir, whole, rather than vanish; our bounces do not."""
    import mailbox

    kept = tmp_path / "unattributed"
    text = re.sub(r"(?m)^\[bounces\]\n", f'[bounces]\nkeep_unattributed = "{kept}"\n',
                  case.config.read_text(encoding="utf-8"), count=1)
    assert str(kept) in text
    config = case.config.parent / f"keep-{tmp_path.name}.toml"
    config.write_text(text, encoding="utf-8")
    try:
        sent = case.message(1)
        tag = VERP.fullmatch(sent.return_path).group(1)
        forged = shapes.postfix(sent).replace(tag.encode(), (tag[:-3] + ("aaa" if not tag.endswith("aaa") else "bbb")).encode())
        note = b"From: someone@example.org\r\nTo: bounces@x\r\nSubject: hello\r\n\r\nIs anyone there?\r\n"
        for raw in (forged, note, shapes.sendmail(case.message(2))):
            result = digest("bounces", "read", "-", "-c", str(config), "--database", case.settings.database, input=raw)
            assert result.returncode == 0, result.stderr
        box = mailbox.Maildir(kept, create=False)
        assert sorted(m.as_bytes() for m in box) == sorted(mailbox.MaildirMessage(r).as_bytes() for r in (forged, note))
        box.close()
        assert case.events() == [("soft", "5.2.2")] and case.status(1) == "active"
    finally:
        config.unlink()


def test_soft_bounces_add_a_decaying_score_once_per_edition_and_bounce_at_the_threshold(case):
    sent = case.message(3)
    sid = case.store.get(sent.recipient).id
    tags = case.ledger.tags
    start = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)

    def soft(day_offset: int, at: datetime, message: str):
        """A Sendmail "mailbox full" for this reader's message of an edition `day_offset` days on."""
        tag = tags.make(sid, DAY + timedelta(days=day_offset), 1)
        raw = shapes.sendmail(Sent(tags.return_path(tag), sent.recipient, sent.data.replace(
            VERP.fullmatch(sent.return_path).group(1).encode(), tag.encode())))
        case.ledger.clock = Clock(at)
        return take(case, raw.replace(b"<202611300612.5AU6CiQ1012345@mail.example.com>", message.encode()))

    assert soft(0, start, "<a@x>").score == 1.0
    assert soft(0, start, "<b@x>").score is None  # the same edition again: one strike per message
    second = soft(14, start + timedelta(days=14), "<c@x>")  # two half-lives later: 1 → 0.25, + 1
    assert second.score == pytest.approx(1.25) and second.change is None
    third = soft(15, start + timedelta(days=14), "<d@x>")
    assert third.score == pytest.approx(2.25) and case.status(3) == "active"
    fourth = soft(16, start + timedelta(days=14), "<e@x>")
    assert fourth.score == pytest.approx(3.25) and fourth.change == "bounced"
    last = case.store.history(sent.recipient)[-1]
    assert (last.event, last.detail["reason"]) == ("bounced", "soft bounces")


def test_a_forged_or_altered_tag_changes_nothing(case):
    sent = case.message(4)
    tag = VERP.fullmatch(sent.return_path).group(1)
    altered = tag[:5] + ("q" if tag[5] != "q" else "r") + tag[6:]
    forged = shapes.postfix(sent).replace(tag.encode(), altered.encode())
    assert take(case, forged).outcome == "unattributed"
    # A stranger's DSN that names our reader's address but carries no tag of ours.
    stranger = shapes.postfix(Sent("bounces@elsewhere.example", sent.recipient, b"Subject: hi\r\n\r\nhi\r\n"))
    assert take(case, stranger).outcome == "unattributed"
    assert case.events() == [] and case.status(4) == "active"


def test_reset_clears_a_bounce_but_never_a_complaint(case):
    bounced, complained = case.message(5), case.message(6)
    take(case, shapes.qmail(bounced))
    take(case, shapes.microsoft_arf(complained))
    assert (case.status(5), case.status(6)) == ("bounced", "unsubscribed")
    result = case.cli("subscribers", "reset", bounced.recipient)
    assert result.returncode == 0 and "active again" in result.stdout
    result = case.cli("subscribers", "reset", complained.recipient)
    assert result.returncode == 0 and "still unsubscribed" in result.stdout
    assert (case.status(5), case.status(6)) == ("active", "unsubscribed")
    last = case.store.history(bounced.recipient)[-1]
    assert (last.event, last.channel, last.detail["was"]) == ("reset", "cli", "bounced")


def test_the_report_counts_each_edition_and_warns_past_the_complaint_line(case):
    take(case, shapes.postfix(case.message(1)))
    take(case, shapes.sendmail(case.message(2)))
    take(case, shapes.yahoo_arf(case.message(3)))
    take(case, shapes.vacation(case.message(4)))
    case.store.unsubscribe(case.emails[5])  # one-click, after the send
    result = case.cli("report", "--date", DAY.isoformat(), "--format", "json")
    assert result.returncode == 1  # 1 complaint in 8: far past 0.3 %
    assert "past Gmail's 0.3 % line" in result.stderr
    [edition] = json.loads(result.stdout)
    assert edition["edition"] == EDITION
    assert {k: edition[k] for k in ("sent", "bounced_hard", "bounced_soft", "complaints", "unsubscribes")} == \
        {"sent": 8, "bounced_hard": 1, "bounced_soft": 1, "complaints": 1, "unsubscribes": 2}
    assert edition["complaint_rate"] == 0.125 and edition["complaint_level"] == "over"
    table = case.cli("report", "--date", DAY.isoformat())
    assert "complaints" in table.stdout and "12.500% of sent" in table.stdout


def test_mbox_files_and_maildir_folders_are_read_message_by_message(case, tmp_path):
    mbox = tmp_path / "bounces.mbox"
    with mbox.open("wb") as out:
        for raw in (shapes.gmail(case.message(1)), b"From: someone@example.org\r\nSubject: hello\r\n\r\n>From here on (an mbox quotes it)\r\n"):
            out.write(b"From MAILER-DAEMON Mon Nov 30 06:12:44 2026\n" + raw.replace(b"\r\n", b"\n") + b"\n")
    maildir = tmp_path / "Maildir"
    for box in ("new", "cur", "tmp"):
        (maildir / box).mkdir(parents=True)
    (maildir / "new" / "1796013000.M1P1.mx").write_bytes(shapes.exim(case.message(2)))
    (maildir / "cur" / "1796013001.M2P1.mx:2,S").write_bytes(shapes.vacation(case.message(3)))
    result = case.cli("bounces", "read", str(mbox), str(maildir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4
    assert "(message 1)" in lines[0] and "hard 5.1.1" in lines[0] and "→ bounced" in lines[0]
    assert "(message 2)" in lines[1] and "left: no valid return-path tag" in lines[1]
    assert "soft 5.7.1" in lines[2] and "auto-reply" in lines[3]
    assert case.events() == [("hard", "5.1.1"), ("soft", "5.7.1"), ("auto-reply", None)]


# -- hostile mail ---------------------------------------------------------------------------------

def _nested(depth: int, tag: str) -> bytes:
    head = f"From: x@example.org\r\nTo: bounces+{tag}@bounces.lequotidien.example.ma\r\nMIME-Version: 1.0\r\n".encode()
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth))
    return head + opening + b"Content-Type: text/plain\r\n\r\n550 5.1.1 no\r\n"


def test_a_hostile_bounce_costs_bounded_memory_and_changes_nothing(case):
    sent = case.message(7)
    tag = VERP.fullmatch(sent.return_path).group(1)
    forged = tag[:-3] + "aaa" if not tag.endswith("aaa") else tag[:-3] + "bbb"
    # 10 MB: a forged tag, a DSN's shape, and a body of one endless line.
    huge = shapes.postfix(sent).replace(tag.encode(), forged.encode()) + b"x" * (10 * 1024 * 1024)
    stream = io.BytesIO(huge)
    tracemalloc.start()
    try:
        taken = case.ledger.take(from_stream(stream))
        deep = take(case, _nested(20_000, tag))  # a valid tag, 20,000 nested parts
        wide = take(case, _nested(1, tag) + b"--b0\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 40_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stream.tell() == len(huge)  # drained, so the MTA writing to us sees no broken pipe
    assert taken.outcome == "unattributed"
    assert deep.outcome in ("recorded", "unrecognised") and wide.outcome in ("recorded", "unrecognised")
    assert peak < 40 * MESSAGE_MAX, peak  # a few copies of what is kept, never the 10 MB
    assert case.status(7) in ("active", "bounced")  # the reader's own tag: theirs to spend
    result = case.cli("bounces", "read", "-", input=huge)
    assert result.returncode == 0 and "left: no valid return-path tag" in result.stdout.decode()


# -- IMAP -----------------------------------------------------------------------------------------

@pytest.mark.skipif(not imap.available(), reason="Dovecot is not installed (.ci/run installs dovecot-imapd)")
def test_fetch_moves_what_it_took_in_and_leaves_everything_else_unread(case):
    server = imap.Dovecot()
    try:
        client = server.client()
        ours = shapes.postfix(case.message(1))
        tag = VERP.fullmatch(case.message(1).return_path).group(1)
        strangers = [b"From: reader@example.org\r\nTo: bounces@bounces.lequotidien.example.ma\r\n"
                     b"Subject: question\r\nMessage-ID: <q1@example.org>\r\n\r\nA question for the newsroom.\r\n",
                     shapes.postfix(case.message(2)).replace(VERP.fullmatch(case.message(2).return_path).group(1).encode(),
                                                            tag[::-1].encode())]
        for raw in (strangers[0], ours, strangers[1]):
            assert client.append("INBOX", None, None, raw)[0] == "OK"
        config = case.config.parent / f"imap-{server.port}.toml"
        config.write_text(case.config.read_text(encoding="utf-8") + f"""imap_host = "127.0.0.1"
imap_port = {server.port}
imap_tls = "none"
imap_username = "{imap.USER}"
imap_password_env = "DIGEST_TEST_IMAP_PASSWORD"
""", encoding="utf-8")
        from support.cli import digest

        for _ in range(2):  # a second run finds nothing more of ours, and leaves the rest again
            result = digest("bounces", "fetch", "-c", str(config), "--database", case.settings.database,
                            env={"DIGEST_TEST_IMAP_PASSWORD": imap.PASSWORD})
            assert result.returncode == 0, result.stderr
        assert "1 messages: 0 taken in" not in result.stdout and "2 messages: 0 taken in" in result.stdout
        assert case.status(1) == "bounced" and case.status(2) == "active"
        client.select("INBOX")
        status, data = client.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        left = [item for item in data if isinstance(item, tuple)]
        assert len(left) == 2 and all(b"\\Seen" not in item[0] for item in left)  # untouched, still unread
        client.select('"digest-processed"')
        status, data = client.uid("SEARCH", "ALL")
        assert len(data[0].split()) == 1
        client.logout()
    finally:
        server.stop()
    with case.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(bounce_events)).scalar_one() == 1


def _keys(case: Case):
    from subscribers.tokens import load_keys

    return load_keys(case.settings.secret_file)
