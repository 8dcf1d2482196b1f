"""The sign-up form of `digest serve` (issue 11), through Starlette's test client on a real store and the
real outbox: the form, the same answer to every POST, each abuse rule, double opt-in (a GET changes
nothing, the POST confirms once, the link expires), the welcome email, and the reader's data."""
from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text, update

from digest.delivery.queue import Queue
from digest.web.serve import CSP, create_app
from subscribers.schema import signups

from support.mail import parse
from support.newsroom import PREFIX, SITE
from support.signup import FORM, client, confirm_path, csrf_of, fill, letters, signup_room, stamp_of

SENT = "confirmation email to send"


@pytest.fixture
def room(tmp_path):
    return signup_room(tmp_path)


@pytest.fixture
def app(room):
    return create_app(room.settings, room.store)


def test_the_form_is_in_the_newsletters_language_with_no_script_and_the_pages_policy(app):
    page = client(app).get(FORM)
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP and page.headers["cache-control"] == "no-store"
    html = page.text
    assert '<html lang="fr"' in html and "S’abonner au Quotidien" in html
    assert "<script" not in html and " style=" not in html
    for field in ('name="email"', 'name="name"', 'name="locale"', 'name="rubric"', 'name="stamp"', 'name="website"'):
        assert field in html
    assert 'value="2026-11"' not in html  # the wording's version is the server's to record, not the form's
    assert "https://lequotidien.example.ma/confidentialite" in html  # the privacy notice beside the consent
    assert client(app).get(FORM + "?lang=ar").text.count('dir="rtl"') == 1


def test_a_sign_up_sends_one_confirmation_and_makes_a_pending_reader_who_gets_no_edition(room, app, tmp_path):
    answer = fill(client(app, "203.0.113.9"), "Nadia@Example.net", name="Nadia", locale="en", rubrics=("sport",))
    assert answer.status_code == 200 and "Consultez" not in answer.text and "Check your inbox" in answer.text
    [mail] = letters(tmp_path)
    message = parse(mail)
    assert message["To"] == "nadia@example.net" and message["Subject"] == "Confirm your subscription to Le Quotidien"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    html = message.get_body(("html",)).get_content()
    assert "Nadia" not in mail.decode() and "nadia@example.net" in html  # the address, never the name
    reader = room.store.get("nadia@example.net")
    assert (reader.status, reader.locale, reader.rubrics) == ("pending", "en", frozenset({"sport"}))
    assert ("en", frozenset({"sport"})) not in room.store.variants()
    queue = Queue(room.store)
    try:  # the edition's queue: the two readers, not the pending one
        assert queue.add_rows("quotidien-2026-11-30", datetime.now(UTC), None) == 2
    finally:
        queue.close()
    assert room.store.count()["pending"] == 1
    [event] = room.store.history("nadia@example.net")
    assert (event.event, event.channel, event.wording, event.network) == ("signed_up", "form", "2026-11", "203.0.113.0/24")
    assert event.source == "https://lequotidien.example.ma/digest/subscribe" and event.user_agent == "testclient"


def test_every_post_gets_the_same_page_whatever_the_address_and_whatever_became_of_it(room, app, tmp_path):
    room.store.add("active@example.net")
    room.store.add("left@example.net", status="unsubscribed")
    room.store.add("gone@example.net", status="bounced")
    fill(client(app, "203.0.113.1"), "waiting@example.net")  # pending
    answers = [fill(client(app, f"198.51.{i}.7"), address)
               for i, address in enumerate(["new@example.net", "waiting@example.net", "active@example.net",
                                            "left@example.net", "gone@example.net"])]
    answers.append(fill(client(app), "robot@example.net", honeypot="https://spam.example"))  # a refusal
    first = answers[0]
    for answer in answers:
        assert (answer.status_code, answer.content) == (first.status_code, first.content)  # byte for byte
        assert dict(answer.headers) == dict(first.headers)
    # New, pending, unsubscribed and bounced ones are sent a confirmation; the active one nothing.
    assert sorted(parse(m)["To"] for m in letters(tmp_path)) == [
        "gone@example.net", "left@example.net", "new@example.net", "waiting@example.net", "waiting@example.net"]
    assert room.store.get("left@example.net").status == "unsubscribed"  # until they confirm
    assert room.store.get("active@example.net").status == "active"


@pytest.mark.parametrize("case, fields, reason", [
    ("honeypot", {"honeypot": "http://spam.example"}, "honeypot"),
    ("forged stamp", {"stamp": "01" + "0" * 10 + "A" * 32}, "stamp: missing, forged or older than a day"),
    ("no stamp", {"stamp": ""}, "stamp: missing, forged or older than a day"),
    ("disposable domain", {"email": "x@mailinator.com"}, "domain blocked"),
    ("blocked subdomain", {"email": "x@mail.example.org"}, "domain blocked"),
    ("name full of links", {"name": "WIN http://spam.example/x\r\nBcc: victim@example.net"}, "name with a link"),
    ("unknown rubric", {"rubrics": ("casino",)}, "form: an unknown rubric"),
])
def test_each_refusal_sends_nothing_writes_nothing_and_says_why_in_the_log(app, room, tmp_path, caplog, case, fields, reason):
    expected = fill(client(app, "192.0.2.1"), "control@example.net").content
    caplog.set_level(logging.INFO, logger="digest.serve")
    answer = fill(client(app), **{"email": "reader@example.net", **fields})
    assert answer.content == expected
    assert len(letters(tmp_path)) == 1  # the control's only
    assert room.store.get(fields.get("email", "reader@example.net")) is None
    assert f"sign-up refused ({reason}): nothing sent" in caplog.text
    assert "reader@example.net" not in caplog.text


def test_a_form_sent_back_faster_than_a_person_can_or_older_than_a_day_is_refused(tmp_path, caplog):
    room = signup_room(tmp_path, min_seconds=3600)  # no one fills a form in less than min_seconds
    app = create_app(room.settings, room.store)
    caplog.set_level(logging.INFO, logger="digest.serve")
    fill(client(app), "quick@example.net")
    assert "sign-up refused (stamp: sent back too fast)" in caplog.text
    room = signup_room(tmp_path / "stale")
    app = create_app(room.settings, room.store)
    from digest.web.serve import FormGuard
    from subscribers.tokens import load_keys

    keys, current = load_keys(room.settings.secret_file)
    stale = FormGuard(keys, current, room.settings.newsletter.list_id).make("signup:form", now=time.time() - 25 * 3600)
    fill(client(app), "slow@example.net", stamp=stale)
    assert "sign-up refused (stamp: missing, forged or older than a day)" in caplog.text
    assert letters(tmp_path) == [] and letters(tmp_path / "stale") == []


def test_a_name_with_line_breaks_is_one_line_and_never_reaches_the_email(room, app, tmp_path):
    fill(client(app), "nadia@example.net", name="Nadia\r\nX-Injected: yes\r\n\r\nHello")
    [mail] = letters(tmp_path)
    assert b"X-Injected" not in mail and b"Nadia" not in mail and b"Hello" not in mail
    assert parse(mail)["X-Injected"] is None
    assert room.store.get("nadia@example.net").name == "Nadia X-Injected: yes Hello"


def test_a_burst_from_one_network_stops_at_its_limit_ipv4_and_ipv6(tmp_path, caplog):
    room = signup_room(tmp_path, per_network_per_hour=2)
    app = create_app(room.settings, room.store)
    caplog.set_level(logging.INFO, logger="digest.serve")
    for i, ip in enumerate(["203.0.113.5", "203.0.113.77", "203.0.113.200", "198.51.100.1"]):
        fill(client(app, ip), f"reader{i}@example.net")
    for i, ip in enumerate(["2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:2:abcd::1", "2001:db8:1:3::1"]):
        fill(client(app, ip), f"six{i}@example.net")
    sent = sorted(parse(m)["To"] for m in letters(tmp_path))
    assert sent == ["reader0@example.net", "reader1@example.net", "reader3@example.net",
                    "six0@example.net", "six1@example.net", "six3@example.net"]
    assert caplog.text.count("sign-up refused (limit of the network): nothing sent") == 2
    assert room.store.get("reader2@example.net") is None  # a refusal writes nothing


def test_many_addresses_at_one_domain_and_one_address_many_times_stop_at_their_limits(tmp_path, caplog):
    room = signup_room(tmp_path, per_domain_per_hour=3, per_address_per_day=2)
    app = create_app(room.settings, room.store)
    caplog.set_level(logging.INFO, logger="digest.serve")
    for i in range(5):
        fill(client(app, f"198.51.{i}.1"), f"reader{i}@target.example")
    for i in range(4):
        fill(client(app, f"192.0.{i}.1"), "same@example.net")
    sent = [parse(m)["To"] for m in letters(tmp_path)]
    assert sorted(sent) == ["reader0@target.example", "reader1@target.example", "reader2@target.example",
                            "same@example.net", "same@example.net"]
    assert caplog.text.count("(limit of the domain)") == 2 and caplog.text.count("(limit of the address)") == 2


def test_a_form_on_an_allowed_site_takes_one_more_step_and_any_other_site_is_refused(tmp_path, caplog):
    room = signup_room(tmp_path, allowed_origins=["https://www.lequotidien.example.ma"])
    app = create_app(room.settings, room.store)
    caplog.set_level(logging.INFO, logger="digest.serve")
    data = {"email": "reader@example.net", "name": "Salma", "locale": "ar", "rubric": ["sport"], "form": "footer"}
    cross = {"Origin": "https://www.lequotidien.example.ma", "Sec-Fetch-Site": "same-site"}
    step = client(app).post(FORM, data=data, headers=cross)
    assert step.status_code == 200 and "خطوة أخيرة" in step.text and 'value="reader@example.net"' in step.text
    assert letters(tmp_path) == [] and room.store.get("reader@example.net") is None  # nothing yet
    again = client(app).post(FORM, data={**data, "stamp": stamp_of(step.text)}, headers={"Sec-Fetch-Site": "same-origin"})
    assert "تفقد بريدك الوارد" in again.text and len(letters(tmp_path)) == 1
    assert room.store.history("reader@example.net")[0].source.endswith("/digest/subscribe (form footer)")
    # A page elsewhere, even with a valid stamp, is refused; so is one that hides where it is (Origin: null).
    stamp = stamp_of(client(app).get(FORM).text)
    for headers in ({"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
                    {"Origin": "null", "Sec-Fetch-Site": "cross-site"}):
        refused = client(app).post(FORM, data={**data, "email": "victim@example.net", "stamp": stamp}, headers=headers)
        assert refused.content == again.content
    assert caplog.text.count("sign-up refused (origin): nothing sent") == 2 and len(letters(tmp_path)) == 1


def test_an_address_that_is_not_one_gets_the_form_again_with_the_error(app, tmp_path):
    answer = fill(client(app), "salma@@example")
    assert answer.status_code == 400 and 'id="error"' in answer.text and 'value="salma@@example"' in answer.text
    assert letters(tmp_path) == []


def confirm(http, path: str):
    page = http.get(path)
    return page, http.post(path, data={"csrf": csrf_of(page.text)}, headers={"Sec-Fetch-Site": "same-origin"})


def test_opening_the_link_changes_nothing_its_button_confirms_once_and_a_replay_changes_nothing(room, app, tmp_path):
    from digest.pipeline.archive import write_page

    write_page(room.settings, room.day_edition.edition)  # the archive's latest edition, for the welcome email
    fill(client(app), "nadia@example.net", locale="en", rubrics=("sport", "culture"))
    path = confirm_path(letters(tmp_path)[0])
    http = client(app, "203.0.113.50")
    page = http.get(path)
    assert page.status_code == 200 and 'id="confirm"' in page.text and "na…@example.net" in page.text
    assert page.headers["content-security-policy"] == CSP and page.headers["x-robots-tag"] == "noindex, nofollow"
    assert room.store.get("nadia@example.net").status == "pending"  # a link scanner's GET changes nothing
    done = http.post(path, data={"csrf": csrf_of(page.text)}, headers={"Sec-Fetch-Site": "same-origin"})
    assert done.status_code == 200 and 'id="confirmed"' in done.text
    reader = room.store.get("nadia@example.net")
    assert (reader.status, reader.locale, reader.rubrics) == ("active", "en", frozenset({"sport", "culture"}))
    assert [e.event for e in room.store.history(reader.email)] == ["signed_up", "confirmed"]
    confirmed = room.store.history(reader.email)[1]
    assert (confirmed.wording, confirmed.network, confirmed.channel) == ("2026-11", "203.0.113.0/24", "form")
    # The welcome email: the latest edition of the archive, the reader's own links.
    [welcome] = letters(tmp_path, "welcome")
    body = parse(welcome).get_body(("plain",)).get_content()
    assert parse(welcome)["Subject"] == "Welcome to Le Quotidien"
    assert f"{SITE}{PREFIX}/archive/2026-11-29.html" in body and f"{SITE}{PREFIX}/preferences/" in body
    # The same link again: used up. Even after the reader leaves, it cannot make them a reader again.
    assert http.get(path).status_code == 404
    room.store.unsubscribe(reader.id)
    replay = http.post(path, data={"csrf": csrf_of(page.text)}, headers={"Sec-Fetch-Site": "same-origin"})
    assert replay.status_code == 404 and room.store.get(reader.email).status == "unsubscribed"
    assert len(letters(tmp_path, "welcome")) == 1


def test_the_confirmation_post_needs_its_csrf_token_and_our_own_page(room, app, tmp_path):
    fill(client(app), "nadia@example.net")
    path = confirm_path(letters(tmp_path)[0])
    csrf = csrf_of(client(app).get(path).text)
    assert client(app).post(path, data={}).status_code == 403
    assert client(app).post(path, data={"csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert room.store.get("nadia@example.net").status == "pending"


def test_an_expired_link_confirms_nothing_and_the_pending_reader_is_removed_with_their_history(room, app, tmp_path):
    fill(client(app), "late@example.net")
    path = confirm_path(letters(tmp_path)[0])
    signup_id = int(path.rsplit("/", 1)[1][2:12], 16)
    # A link made 49 hours ago (the same keys, the time it carries moved back) no longer verifies.
    old = room.tokens.make_expiring(signup_id, "confirm", time.time() - 49 * 3600)
    assert client(app).get(f"{PREFIX}/subscribe/confirm/{old}").status_code == 404
    # The sign-up itself expires after 48 hours: moved back in the database, as 48 hours would.
    with room.store.engine.begin() as conn:
        conn.execute(update(signups).values(expires_at=text("requested_at")))
    page = client(app).get(path)
    assert page.status_code == 404 and "Ce lien n’est plus valable" in page.text
    assert room.store.get("late@example.net").status == "pending"
    assert room.store.purge_signups() == 1
    assert room.store.get("late@example.net") is None and room.store.history("late@example.net") == []
    assert room.store.count() == {"active": 2, "unsubscribed": 0, "bounced": 0}


def test_a_reader_who_left_signs_up_again_and_must_confirm_again(room, app, tmp_path):
    room.store.unsubscribe(room.emails[0])
    fill(client(app), room.emails[0], locale="ar")
    assert room.store.get(room.emails[0]).status == "unsubscribed"
    confirm(client(app), confirm_path(letters(tmp_path)[0]))
    reader = room.store.get(room.emails[0])
    assert (reader.status, reader.locale) == ("active", "ar")
    assert [e.event for e in room.store.history(reader.email)] == ["added", "unsubscribed", "signed_up", "confirmed"]
    assert parse(letters(tmp_path, "welcome")[0])["Subject"] == "مرحبا بك في Le Quotidien"


def test_the_reader_downloads_their_data_then_erases_it_and_an_import_does_not_bring_them_back(room, app, tmp_path):
    fill(client(app, "203.0.113.4"), "nadia@example.net", name="Nadia")
    confirm(client(app), confirm_path(letters(tmp_path)[0]))
    reader = room.store.get("nadia@example.net")
    prefs = f"{PREFIX}/preferences/{room.tokens.make(reader.id)}"
    http = client(app)
    page = http.get(prefs)
    assert 'id="download"' in page.text and 'id="erase"' in page.text
    same = {"Sec-Fetch-Site": "same-origin"}
    download = http.post(prefs, data={"csrf": csrf_of(page.text), "action": "download"}, headers=same)
    assert download.headers["content-type"] == "application/json"
    assert download.headers["content-disposition"] == 'attachment; filename="my-data.json"'
    assert download.headers["cache-control"] == "no-store"
    data = json.loads(download.content)
    assert data["subscriber"]["email"] == "nadia@example.net" and data["subscriber"]["name"] == "Nadia"
    assert [e["event"] for e in data["history"]] == ["signed_up", "confirmed"]
    assert data["history"][0]["network"] == "203.0.113.0/24" and data["deliveries"] == []
    assert http.post(prefs, data={"action": "download"}, headers=same).status_code == 403  # no CSRF token
    # Erase: a confirmation step first, which changes nothing …
    step = http.post(prefs, data={"csrf": csrf_of(page.text), "action": "erase"}, headers=same)
    assert 'id="erase-confirmed"' in step.text and room.store.get("nadia@example.net") is not None
    # … then everything goes but a keyed hash of the address.
    gone = http.post(prefs, data={"csrf": csrf_of(step.text), "action": "erase_confirmed"}, headers=same)
    assert gone.status_code == 200 and "Vos données sont effacées" in gone.text
    assert room.store.get("nadia@example.net") is None and room.store.history("nadia@example.net") == []
    with room.store.engine.connect() as conn:
        dump = "\n".join(str(row) for table in ("subscribers", "consent_events", "signups", "erasures")
                         for row in conn.execute(text(f"SELECT * FROM {table}")))
    assert "nadia" not in dump.lower()
    assert room.store.erased_at("nadia@example.net") is not None
    assert http.get(prefs).status_code == 404  # the link no longer opens anything
    import io

    from subscribers.csvio import import_csv

    report = import_csv(room.store, io.StringIO("email,name\nnadia@example.net,Nadia\nomar@example.net,Omar\n"))
    assert (report.created, report.bad) == (1, 1) and "was erased at the reader's request" in report.errors[0][1]
    assert room.store.get("nadia@example.net") is None
    # Only the reader can come back: through the form, confirmed; the erasure then no longer stands.
    fill(client(app, "192.0.2.44"), "nadia@example.net")
    confirm(client(app), confirm_path(letters(tmp_path)[-1]))
    assert room.store.get("nadia@example.net").status == "active" and room.store.erased_at("nadia@example.net") is None


def test_the_changes_of_state_by_one_click_and_preferences_are_on_record_with_their_network(room, app):
    http = client(app, "203.0.113.99")
    token = room.tokens.make(room.store.get(room.emails[1]).id)
    http.post(f"{PREFIX}/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}, headers={"User-Agent": "MailApp\t 1.0"})
    page = http.get(f"{PREFIX}/preferences/{token}")
    http.post(f"{PREFIX}/preferences/{token}", headers={"Sec-Fetch-Site": "same-origin"},
              data={"csrf": csrf_of(page.text), "action": "resubscribe", "locale": "ar", "rubric": ["sport"]})
    events = room.store.history(room.emails[1])
    assert [(e.event, e.channel) for e in events] == [("added", "api"), ("unsubscribed", "one-click"),
                                                      ("changed", "preferences"), ("resubscribed", "preferences")]
    assert events[1].network == "203.0.113.0/24" and events[1].user_agent == "MailApp 1.0"
    assert events[2].detail == {"locale": "ar", "rubrics": "sport"}


def test_without_signup_enabled_there_is_no_form(tmp_path):
    room = signup_room(tmp_path, enabled=False)
    http = client(create_app(room.settings, room.store))
    assert http.get(FORM).status_code == 404 and http.post(FORM, data={"email": "a@example.net"}).status_code == 404
    assert 'id="subscribe"' not in http.get(f"{PREFIX}/archive/").text
