"""`digest serve`: one-click unsubscribe (RFC 8058), preferences with CSRF, security headers, logs.

Unit tests run the ASGI app through Starlette's test client on a real store (SQLite in tmp_path);
the last ones start the real `digest serve` command on a free port and stop it with signals.
"""
from __future__ import annotations

import logging
import re
import signal
import time
import warnings
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select

with warnings.catch_warnings():  # Starlette 1.x suggests a fork of httpx for its test client; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from digest.delivery.schema import deliveries
from digest.web.serve import CSP, FormGuard, create_app, mask, redact
from subscribers.schema import subscribers as subscribers_table
from subscribers.tokens import Tokens, load_keys

from support.mail import parse
from support.newsroom import PREFIX, Newsroom, sid
from support.newsroom import SITE as BASE
from support.ports import PATIENCE
from support.served import serve

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def room(tmp_path):
    return Newsroom(tmp_path, subscribers=4)


@pytest.fixture
def client(room):
    with TestClient(create_app(room.settings, room.store), base_url=BASE, follow_redirects=False) as c:
        yield c


def unsub_path(room, i: int = 0, token: str | None = None) -> str:
    return f"{PREFIX}/unsubscribe/{token or room.tokens.make(sid(room, i))}"


def prefs_path(room, i: int = 0, token: str | None = None) -> str:
    return f"{PREFIX}/preferences/{token or room.tokens.make(sid(room, i))}"


def snapshot(room) -> list[tuple]:
    """Everything a request could change about the subscribers."""
    return [(s.id, s.status, s.locale, tuple(sorted(s.rubrics)), s.delivery_time, s.updated_at)
            for s in room.store.iter_subscribers()]


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


# -- one-click unsubscribe ----------------------------------------------------------------------------

def test_one_click_post_unsubscribes_at_once_with_200_and_no_redirect(room, client):
    response = client.post(unsub_path(room), data=ONE_CLICK)
    assert response.status_code == 200
    assert "location" not in response.headers and not response.is_redirect
    assert len(response.content) < 4096  # a small page, nothing to load
    assert room.store.get(room.emails[0]).status == "unsubscribed"
    assert [room.store.get(e).status for e in room.emails[1:]] == ["active"] * 3


def test_one_click_as_multipart_form_data_as_rfc_8058_suggests(room, client):
    response = client.post(unsub_path(room, 1), files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    assert room.store.get(room.emails[1]).status == "unsubscribed"


def test_the_next_send_skips_whoever_unsubscribed(room, client):
    assert client.post(unsub_path(room, 2), data=ONE_CLICK).status_code == 200
    report = room.sender().run()
    recipients = {parse(f.read_bytes())["To"].addresses[0].addr_spec
                  for f in (room.tmp / "outbox" / report.edition).glob("*.eml")}
    assert recipients == set(room.emails) - {room.emails[2]}


def test_repeating_the_one_click_post_is_harmless(room, client):
    path = unsub_path(room)
    assert client.post(path, data=ONE_CLICK).status_code == 200
    before = snapshot(room)
    for _ in range(3):
        again = client.post(path, data=ONE_CLICK)
        assert again.status_code == 200 and not again.is_redirect
    assert snapshot(room) == before  # not even updated_at moves


def test_get_and_head_never_unsubscribe_the_page_s_button_posts(room, client):
    before = snapshot(room)
    path = unsub_path(room)
    page = client.get(path)
    assert page.status_code == 200
    assert client.head(path).status_code == 200
    assert snapshot(room) == before
    form = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert form and form.group(1) == path
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page.text
    assert "se…@example.com" not in page.text and "re…@example.com" in page.text  # masked, never the address
    assert room.emails[0] not in page.text


def test_a_post_without_the_one_click_body_changes_nothing(room, client):
    before = snapshot(room)
    for body in ({}, {"List-Unsubscribe": "Two-Clicks"}, {"unsubscribe": "yes"}):
        assert client.post(unsub_path(room), data=body).status_code == 400
    assert client.post(unsub_path(room), content=b"List-Unsubscribe=One-Click&x=" + b"y" * 20_000).status_code == 413
    chunked = iter([b"List-Unsubscribe=One-Click&x=", b"y" * 20_000])  # no Content-Length to go by
    assert client.post(unsub_path(room), content=chunked,
                       headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 413
    assert snapshot(room) == before


@pytest.mark.parametrize("content_type, body", [
    ("application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click"),
    ("application/x-www-form-urlencoded; charset=utf-8", b"List-Unsubscribe=One-Click&utm=x"),
    ("multipart/form-data; boundary=XyZ",
     b'--XyZ\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--XyZ--\r\n'),
    (None, b"List-Unsubscribe=One-Click"),
    ("text/plain", b"List-Unsubscribe=One-Click\r\n"),
    ("application/octet-stream", b"List-Unsubscribe=One-Click"),
])
def test_the_one_click_body_types_that_unsubscribe(room, client, content_type, body):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(unsub_path(room), content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert room.store.get(room.emails[0]).status == "unsubscribed"


@pytest.mark.parametrize("content_type, body", [
    ("application/json", b'{"List-Unsubscribe": "One-Click"}'),
    ("text/plain", b"List-Unsubscribe=One-Click&more=1"),
    (None, b"list-unsubscribe=one-click"),
    (None, b""),
    ("application/x-www-form-urlencoded", b"List-Unsubscribe=Two-Clicks"),
    ("multipart/form-data; boundary=XyZ",
     b'--XyZ\r\nContent-Disposition: form-data; name="unsubscribe"\r\n\r\nOne-Click\r\n--XyZ--\r\n'),
])
def test_other_one_click_bodies_are_400_and_change_nothing(room, client, content_type, body):
    before = snapshot(room)
    headers = {"Content-Type": content_type} if content_type else {}
    assert client.post(unsub_path(room), content=body, headers=headers).status_code == 400
    assert snapshot(room) == before


def test_an_absurd_content_length_is_413_not_a_crash(room, client):
    # h11 stops at 20 digits, but the app does not count on its server for that: int() of 5000 raises.
    for length in ("9" * 5000, "9" * 20):
        response = client.post(unsub_path(room), headers={"Content-Length": length})
        assert response.status_code == 413 and response.headers["connection"] == "close", length
    assert client.post(unsub_path(room), headers={"Content-Length": "-1"}).status_code == 400


def test_unsubscribed_and_bounced_subscribers_see_where_they_stand(room, client):
    room.store.unsubscribe(room.emails[0])
    room.store.set_status(room.emails[1], "bounced")
    assert 'id="unsubscribed"' in client.get(unsub_path(room, 0)).text
    bounced = client.post(unsub_path(room, 1), data=ONE_CLICK)
    assert bounced.status_code == 200 and room.store.get(room.emails[1]).status == "bounced"


def test_the_page_speaks_the_subscriber_s_language(room, client):
    # reader0001 reads English, reader0002 Arabic (tests/support/newsroom.py)
    assert "Unsubscribe from Le Quotidien?" in client.get(unsub_path(room, 1)).text
    arabic = client.get(unsub_path(room, 2)).text
    assert 'lang="ar" dir="rtl"' in arabic and "إلغاء الاشتراك في Le Quotidien؟" in arabic
    assert "Se désabonner du Quotidien\u202f?" in client.get(unsub_path(room, 0)).text  # "de Le" contracted


# -- tokens that must not work ------------------------------------------------------------------------

def _bad_tokens(room) -> dict[str, str]:
    good = room.tokens.make(sid(room, 0))
    other_id = room.tokens.make(sid(room, 1))
    flipped = good[:-1] + ("A" if good[-1] != "A" else "B")
    keys = {1: b"another-newsroom-secret-0123456789"}
    ours, _ = load_keys(room.settings.secret_file)
    return {
        "forged": "01" + f"{sid(room, 0):010x}" + "A" * 32,
        "truncated": good[:-1],
        "one more character": good + "A",
        "tampered mac": flipped,
        "id swapped": good[:2] + other_id[2:12] + good[12:],
        "other newsletter": Tokens(ours, 1, "other.list.example.ma").make(sid(room, 0)),
        "key version not held": Tokens({7: b"k" * 32}, 7, room.settings.newsletter.list_id).make(sid(room, 0)),
        "same version, other key": Tokens(keys, 1, room.settings.newsletter.list_id).make(sid(room, 0)),
        "uppercase hex": (lambda t: t[:12].upper() + t[12:])(room.tokens.make(0xab)),  # valid in lowercase
        "the address": room.emails[0],
        "empty-ish": "-",
    }


def test_forged_truncated_tampered_and_foreign_tokens_are_404_and_change_nothing(room, client):
    before = snapshot(room)
    for name, token in _bad_tokens(room).items():
        for method, path in (("GET", unsub_path(room, token=token)), ("POST", unsub_path(room, token=token)),
                             ("GET", prefs_path(room, token=token)), ("POST", prefs_path(room, token=token))):
            response = client.request(method, path, data=ONE_CLICK if method == "POST" else None)
            assert response.status_code == 404, (name, method, path)
            assert "no-store" in response.headers["cache-control"]
    assert snapshot(room) == before


def test_a_token_of_a_deleted_subscriber_is_harmless(room, client):
    token = room.tokens.make(sid(room, 3))
    room.store.remove(room.emails[3])
    assert client.post(unsub_path(room, token=token), data=ONE_CLICK).status_code == 200
    assert client.get(prefs_path(room, token=token)).status_code == 404


def test_key_rotation_keeps_links_in_emails_already_sent_working(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGEST_SECRET_1", "first-key-of-the-newsroom-0001")
    room = Newsroom(tmp_path, subscribers=3)
    old = room.tokens.make(sid(room, 0))  # in an email sent before the rotation
    assert old.startswith("01")
    monkeypatch.setenv("DIGEST_SECRET_2", "second-key-of-the-newsroom-002")
    with TestClient(create_app(room.settings, room.store), base_url=BASE) as client:
        assert client.get(unsub_path(room, token=old)).status_code == 200
        assert client.post(unsub_path(room, token=old), data=ONE_CLICK).status_code == 200
        assert room.store.get(room.emails[0]).status == "unsubscribed"
        new = Tokens({1: b"first-key-of-the-newsroom-0001", 2: b"second-key-of-the-newsroom-002"}, 2,
                     room.settings.newsletter.list_id).make(sid(room, 1))
        assert new.startswith("02")
        page = client.get(prefs_path(room, token=new))
        assert page.status_code == 200 and csrf_of(page.text).startswith("02")
    # Key 1 retired: its links stop working, and nothing else does.
    monkeypatch.delenv("DIGEST_SECRET_1")
    with TestClient(create_app(room.settings, room.store), base_url=BASE) as client:
        assert client.get(unsub_path(room, token=old)).status_code == 404
        assert client.get(unsub_path(room, token=new)).status_code == 200


# -- preferences -----------------------------------------------------------------------------------

def test_preferences_open_with_the_email_s_single_token(room, client):
    page = client.get(prefs_path(room, 1))
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert 'value="economie" checked' in page.text and 'value="sport" checked' in page.text  # reader0001's choice
    assert 'value="en" checked' in page.text
    assert csrf_of(page.text)
    preferences_token = room.tokens.make(sid(room, 1), "preferences")
    assert client.get(prefs_path(room, token=preferences_token)).status_code == 200


def test_saving_preferences_changes_what_the_next_send_gives(room, client):
    path = prefs_path(room, 0)
    csrf = csrf_of(client.get(path).text)
    saved = client.post(path, data={"csrf": csrf, "locale": "ar", "rubric": ["sport", "culture"], "action": "save"})
    assert saved.status_code == 200 and not saved.is_redirect
    assert 'id="notice"' in saved.text and 'lang="ar"' in saved.text  # answered in the new language
    subscriber = room.store.get(room.emails[0])
    assert (subscriber.locale, subscriber.rubrics, subscriber.status) == ("ar", frozenset({"sport", "culture"}), "active")

    sender = room.sender()
    report = sender.run()
    assert sender.variant(subscriber.locale, ",".join(sorted(subscriber.rubrics))).rubrics == {"sport", "culture"}
    mine = [parse(f.read_bytes()) for f in (room.tmp / "outbox" / report.edition).glob("*.eml")]
    mine = [m for m in mine if m["To"].addresses[0].addr_spec == room.emails[0]]
    assert len(mine) == 1
    html = mine[0].get_body(("html",)).get_content()
    assert re.search(r'<html[^>]* lang="ar"', html)
    assert "رياضة" in html  # Sport, in Arabic: chosen
    assert "تكنولوجيا" not in html  # Tech, in Arabic: not chosen


def test_ticking_no_rubric_means_every_rubric(room, client):
    path = prefs_path(room, 1)
    client.post(path, data={"csrf": csrf_of(client.get(path).text), "locale": "en", "action": "save"})
    assert room.store.get(room.emails[1]).rubrics == frozenset()


def test_resubscribe_from_the_preferences_page(room, client):
    room.store.unsubscribe(room.emails[0])
    path = prefs_path(room, 0)
    page = client.get(path)
    assert 'id="resubscribe"' in page.text and 'id="unsubscribe"' not in page.text
    again = client.post(path, data={"csrf": csrf_of(page.text), "locale": "fr", "rubric": "politique",
                                    "action": "resubscribe"})
    assert again.status_code == 200
    subscriber = room.store.get(room.emails[0])
    assert (subscriber.status, subscriber.rubrics) == ("active", frozenset({"politique"}))


def test_save_keeps_an_unsubscribed_reader_unsubscribed_and_a_bounced_one_cannot_resubscribe(room, client):
    room.store.unsubscribe(room.emails[0])
    room.store.set_status(room.emails[1], "bounced")
    path = prefs_path(room, 0)
    client.post(path, data={"csrf": csrf_of(client.get(path).text), "locale": "en", "action": "save"})
    assert room.store.get(room.emails[0]).status == "unsubscribed"
    path = prefs_path(room, 1)
    refused = client.post(path, data={"csrf": csrf_of(client.get(path).text), "locale": "en", "action": "resubscribe"})
    assert refused.status_code == 400 and room.store.get(room.emails[1]).status == "bounced"


def test_unsubscribe_from_the_preferences_page(room, client):
    path = prefs_path(room, 2)
    answer = client.post(path, data={"csrf": csrf_of(client.get(path).text), "action": "unsubscribe"})
    assert answer.status_code == 200 and room.store.get(room.emails[2]).status == "unsubscribed"


@pytest.mark.parametrize("fields", [
    {"locale": "de"},
    {"rubric": ["sport", "astrologie"]},
    {"action": "delete"},
    {"rubric": "sport,culture"},
    {"hour": "24:00"},
    {"hour": "9h"},
    {"hour": "newsroom"},
])
def test_unknown_rubrics_locales_or_actions_are_400_and_change_nothing(room, client, fields):
    path = prefs_path(room, 0)
    before = snapshot(room)
    data = {"csrf": csrf_of(client.get(path).text), "locale": "fr", "action": "save", **fields}
    assert client.post(path, data=data).status_code == 400
    assert snapshot(room) == before


def selected_hour(html: str) -> str:
    """The value of the hour the page has selected."""
    select = re.search(r'<select name="hour".*?</select>', html, re.S).group(0)
    return re.findall(r'<option value="([^"]*)" selected>', select)[0] if " selected>" in select else "?"


def test_the_page_offers_the_hour_in_the_reader_s_zone_the_newsroom_s_selected(tmp_path):
    room = Newsroom(tmp_path, subscribers=3, delivery='local_time = "07:00"')
    with TestClient(create_app(room.settings, room.store), base_url=BASE) as client:
        english = client.get(prefs_path(room, 1)).text
        french = client.get(prefs_path(room, 0)).text
    assert selected_hour(english) == ""  # the newsroom's hour, shown with its hour
    assert '<option value="" selected>At the newsroom’s hour (07:00)</option>' in english
    assert '<option value="asap">As soon as it is out</option>' in english
    assert re.findall(r'<option value="(\d\d:\d\d)">', english) == [f"{h:02d}:00" for h in range(24)]
    assert "Hours are those of your time zone: <bdi>Africa/Casablanca (Morocco)</bdi>." in english
    # French typography: a no-break space before the colon of a phrase, none in a time.
    assert "fuseau horaire\u00a0: <bdi>Africa/Casablanca (Maroc)</bdi>" in french
    assert "À l’heure de la rédaction (07:00)" in french


def test_without_a_newsroom_hour_its_option_says_as_soon_as_it_is_out(room, client):
    assert '<option value="" selected>At the newsroom’s hour (as soon as it is out)</option>' in client.get(prefs_path(room, 1)).text


def test_the_hour_chosen_on_the_page_is_saved_shown_and_on_the_consent_record(room, client):
    path = prefs_path(room, 1)
    csrf = csrf_of(client.get(path).text)
    for hour, stored in (("09:00", "09:00"), ("asap", "asap"), ("", None)):
        saved = client.post(path, data={"csrf": csrf, "locale": "en", "rubric": ["economie", "sport"], "hour": hour,
                                        "action": "save"}, headers={"User-Agent": "Firefox/140"})
        assert saved.status_code == 200 and 'id="notice"' in saved.text
        assert room.store.get(room.emails[1]).delivery_time == stored
        assert selected_hour(saved.text) == hour  # the page answers with the choice selected
        assert selected_hour(client.get(path).text) == hour
    changes = [(e.event, e.channel, e.detail, e.user_agent) for e in room.store.history(room.emails[1])][1:]
    assert changes == [("changed", "preferences", {"delivery_time": "09:00"}, "Firefox/140"),
                       ("changed", "preferences", {"delivery_time": "asap"}, "Firefox/140"),
                       ("changed", "preferences", {"delivery_time": None}, "Firefox/140")]


def test_an_hour_set_elsewhere_is_offered_and_kept_and_a_form_without_the_field_keeps_it(room, client):
    room.store.upsert(room.emails[2], delivery_time="06:45")  # from an import: not one of the page's whole hours
    path = prefs_path(room, 2)
    page = client.get(path).text
    assert selected_hour(page) == "06:45"
    assert re.findall(r'<option value="(0[67]:\d\d)"', page) == ["06:00", "06:45", "07:00"]
    csrf = csrf_of(page)
    assert client.post(path, data={"csrf": csrf, "locale": "ar", "hour": "06:45", "action": "save"}).status_code == 200
    assert client.post(path, data={"csrf": csrf, "locale": "ar", "action": "save"}).status_code == 200  # a theme's older page
    assert room.store.get(room.emails[2]).delivery_time == "06:45"


def test_a_reader_who_picks_09_00_on_the_page_gets_the_next_edition_at_09_00_their_time(tmp_path):
    """The newsroom sends at 07:00 where each reader lives; one reader picks 09:00 on the page, another
    "as soon as it is out". `digest send` runs as from cron, its clock set by --now: at the evening's
    enqueue only the second one gets it, at 07:00 the others but the first, at 09:00 the first."""
    room = Newsroom(tmp_path, subscribers=4, delivery='local_time = "07:00"')  # all in Africa/Casablanca, UTC+1
    with TestClient(create_app(room.settings, room.store), base_url=BASE) as client:
        for i, hour in ((0, "09:00"), (1, "asap")):
            path = prefs_path(room, i)
            data = {"csrf": csrf_of(client.get(path).text), "locale": "fr", "hour": hour, "action": "save"}
            assert client.post(path, data=data).status_code == 200

    def received() -> set[str]:
        return {parse(f.read_bytes())["To"].addresses[0].addr_spec for f in (tmp_path / "outbox").rglob("*.eml")}

    def due() -> dict[str, str]:
        """When each reader's row may go, in UTC, while it waits."""
        query = (select(subscribers_table.c.email, deliveries.c.not_before)
                 .join(subscribers_table, subscribers_table.c.id == deliveries.c.subscriber_id)
                 .where(deliveries.c.status == "pending"))
        with room.store.engine.connect() as conn:
            return {email: at.strftime("%Y-%m-%d %H:%M") for email, at in conn.execute(query)}

    evening = room.cli("send", "--now", "2026-11-29T22:00:00+01:00")
    # 0: readers waiting for their hour are the plan, not a failure (cron would mail a warning for 1)
    assert evening.returncode == 0 and received() == {room.emails[1]}, evening.stdout
    assert "waiting              3   (for their reader's hour" in evening.stdout
    assert due() == {room.emails[0]: "2026-11-30 08:00",  # 09:00 theirs
                     room.emails[2]: "2026-11-30 06:00", room.emails[3]: "2026-11-30 06:00"}  # 07:00 theirs
    seven = room.cli("send", "--now", "2026-11-30T07:00:00+01:00")
    assert seven.returncode == 0 and received() == set(room.emails) - {room.emails[0]}, seven.stdout
    nine = room.cli("send", "--now", "2026-11-30T09:00:00+01:00")
    assert nine.returncode == 0 and received() == set(room.emails), nine.stdout
    assert len(list((tmp_path / "outbox").rglob("*.eml"))) == 4  # each reader once


# -- CSRF ---------------------------------------------------------------------------------------------

def test_a_preferences_post_without_a_valid_csrf_token_is_403_and_changes_nothing(room, client):
    path = prefs_path(room, 0)
    mine = csrf_of(client.get(path).text)
    someone_else_s = csrf_of(client.get(prefs_path(room, 1)).text)
    guard = FormGuard({1: b"k" * 32}, 1, room.settings.newsletter.list_id)
    keys, _ = load_keys(room.settings.secret_file)
    stale = FormGuard(keys, 1, room.settings.newsletter.list_id).make(path.rsplit("/", 1)[1], now=time.time() - 3 * 86400)
    before = snapshot(room)
    for csrf in (None, "", "x", mine[:-1], mine[:-1] + ("A" if mine[-1] != "A" else "B"), someone_else_s,
                 guard.make(path.rsplit("/", 1)[1]), stale):
        data = {"locale": "ar", "rubric": "sport", "action": "save"}
        if csrf is not None:
            data["csrf"] = csrf
        refused = client.post(path, data=data)
        assert refused.status_code == 403, csrf
    assert snapshot(room) == before
    assert client.post(path, data={"csrf": mine, "locale": "ar", "action": "save"}).status_code == 200


def test_a_cross_site_post_is_refused_even_with_a_valid_csrf_token(room, client):
    path = prefs_path(room, 0)
    csrf = csrf_of(client.get(path).text)
    before = snapshot(room)
    data = {"csrf": csrf, "locale": "ar", "action": "save"}
    assert client.post(path, data=data, headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.post(path, data=data, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.post(path, data=data, headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.post(path, data=data, headers={"Sec-Fetch-Site": "same-site"}).status_code == 403
    assert snapshot(room) == before
    assert client.post(path, data=data, headers={"Origin": BASE, "Sec-Fetch-Site": "same-origin"}).status_code == 200
    # What Chromium sends for our own form under Referrer-Policy: no-referrer:
    assert client.post(path, data=data, headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"}).status_code == 200


def test_the_one_click_post_needs_no_csrf_token_rfc_8058_forbids_any_context(room, client):
    # No cookie, no CSRF field, no Origin: the signed URL is the whole authority.
    response = client.post(unsub_path(room, 3), data=ONE_CLICK, headers={"Origin": "https://mail.example"})
    assert response.status_code == 200 and "set-cookie" not in response.headers
    assert room.store.get(room.emails[3]).status == "unsubscribed"


# -- headers, redirects, logs ---------------------------------------------------------------------

def _paths(room) -> list[tuple[str, str]]:
    return [
        ("GET", f"{PREFIX}/"), ("GET", f"{PREFIX}/archive/"), ("GET", f"{PREFIX}/static/digest.css"),
        ("GET", unsub_path(room)), ("HEAD", unsub_path(room)), ("GET", prefs_path(room)),
        ("GET", unsub_path(room, token="nope")), ("GET", f"{PREFIX}/nowhere"), ("PUT", unsub_path(room)),
        ("DELETE", prefs_path(room)), ("GET", "/"), ("GET", f"{PREFIX}/healthz"),
        ("GET", f"{PREFIX}/archive/2026-01-01.html"),
    ]


def test_every_response_carries_the_security_headers(room, client):
    for method, path in _paths(room):
        response = client.request(method, path)
        headers = response.headers
        assert headers["content-security-policy"] == CSP, path
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        assert "cache-control" in headers
    policy = dict(part.strip().split(" ", 1) for part in CSP.split(";"))
    assert policy["default-src"] == "'none'" and "script-src" not in policy
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP
    assert policy["frame-ancestors"] == "'none'" and policy["form-action"] == "'self'" and policy["base-uri"] == "'none'"


def test_token_pages_are_never_cached_and_not_indexed(room, client):
    for path in (unsub_path(room), prefs_path(room)):
        response = client.get(path)
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-robots-tag"] == "noindex, nofollow"
    assert client.post(unsub_path(room), data=ONE_CLICK).headers["cache-control"] == "no-store"


def test_no_inline_script_or_style_in_any_page(room, client):
    for path in (f"{PREFIX}/", unsub_path(room), prefs_path(room), unsub_path(room, token="nope")):
        html = client.get(path).text
        assert "<script" not in html.lower() and " style=" not in html and "<style" not in html.lower()


@pytest.mark.parametrize("path", [
    "//evil.example/", "/digest//evil.example", "/digest", "/digest/archive", "/digest/unsubscribe/",
    "/digest/archive/..%2f..%2fdigest.key", "/digest/archive/../digest.key", "/\\evil.example",
    "/digest/preferences/x?next=https://evil.example", "/digest/static/", "/digest/static/../digest.key",
    "/digest/archive/2026-11-29.html/", "/digest/archive/%2e%2e%2fdigest.toml",
])
def test_no_path_redirects_anywhere_or_leaks_a_file(room, client, path):
    response = client.get(path)
    assert not 300 <= response.status_code < 400 and "location" not in response.headers
    keys, _ = load_keys(room.settings.secret_file)
    assert keys[1].decode()[:20] not in response.text


def test_bare_paths_when_base_url_has_no_path_and_prefixed_paths_otherwise(room):
    settings = replace(room.settings, newsletter=replace(room.settings.newsletter, base_url="https://news.example.ma"))
    token = room.tokens.make(sid(room, 0))
    with TestClient(create_app(settings, room.store), base_url="https://news.example.ma") as bare:
        page = bare.get(f"/unsubscribe/{token}")
        assert page.status_code == 200 and f'action="/unsubscribe/{token}"' in page.text
        assert bare.get(f"/digest/unsubscribe/{token}").status_code == 404
    with TestClient(create_app(room.settings, room.store), base_url=BASE) as prefixed:
        assert prefixed.get(f"/unsubscribe/{token}").status_code == 404
        assert prefixed.get(f"/digest/unsubscribe/{token}").status_code == 200


def test_the_log_has_one_line_per_request_and_never_a_token(room, client, caplog):
    caplog.set_level(logging.INFO, logger="digest.serve")
    token = room.tokens.make(sid(room, 0))
    client.get(f"{PREFIX}/unsubscribe/{token}")
    client.post(f"{PREFIX}/unsubscribe/{token}", data=ONE_CLICK)
    client.get(f"{PREFIX}/preferences/{token}?utm_source={token}")
    client.get(f"{PREFIX}/archive/")
    text = caplog.text
    assert token not in text and token[12:30] not in text and room.emails[0] not in text
    requests = [r.getMessage() for r in caplog.records if r.getMessage().startswith(("GET", "POST"))]
    assert len(requests) == 4
    assert requests[0].startswith("GET /digest/unsubscribe/… 200")
    assert requests[1].startswith("POST /digest/unsubscribe/… 200")
    assert requests[3].startswith("GET /digest/archive/ 200")


def test_helpers_redact_and_mask():
    assert redact("/digest/unsubscribe/0123abc/x") == "/digest/unsubscribe/…"
    assert redact("/preferences/abc") == "/preferences/…"
    assert redact("/digest/archive/2026-11-29.html") == "/digest/archive/2026-11-29.html"
    assert mask("salma.alaoui@example.ma") == "sa…@example.ma" and mask("ab@x.ma") == "a…@x.ma"


def test_redact_cuts_tokens_anywhere_escapes_everything_else_and_keeps_the_newsletter_s_prefix():
    token = "01000000002a" + "Zx9_-" * 6 + "ab"
    assert redact(f"/digest/UnSubscribe/{token}") == "/digest/UnSubscribe/…"
    assert redact(f"/digest/archive/{token}.html") == "/digest/archive/…"
    assert redact(f"/{token}/x/PREFERENCES") == "/…/x/PREFERENCES"
    assert redact("/digest/a\nb\rc\x00d\x1b[0m\x85\u2028\u202e \"\\%") == \
        "/digest/a%0Ab%0Dc%00d%1B%5B0m%C2%85%E2%80%A8%E2%80%AE%20%22%5C%25"
    assert redact("/digest/\udcff") == "/digest/%ED%B3%BF"  # a lone surrogate, should a server pass one
    # The prefix of base_url stays readable, however long its words; what follows it is judged.
    prefix = "/newsletters/le-quotidien-du-matin-edition-du-soir"
    assert redact(f"{prefix}/archive/", prefix) == f"{prefix}/archive/"
    assert redact(f"{prefix}/archive/", "") == "/newsletters/…/archive/"
    assert redact(f"{prefix}/{token}", prefix) == f"{prefix}/…"
    long = redact("/digest/" + "é" * 400)
    assert len(long) <= 301 and long.endswith("…")
    assert re.fullmatch(r"/digest/(%C3%A9)+(%C3)?…", long)  # never half an escape


def test_the_log_keeps_a_long_prefix_and_cuts_the_token_after_it(room, caplog):
    prefix = "/newsletters/le-quotidien-du-matin-edition-du-soir"
    settings = replace(room.settings, newsletter=replace(room.settings.newsletter, base_url=BASE + prefix))
    token = room.tokens.make(sid(room, 0))
    caplog.set_level(logging.INFO, logger="digest.serve")
    with TestClient(create_app(settings, room.store), base_url=BASE) as client:
        assert client.get(f"{prefix}/unsubscribe/{token}").status_code == 200
        assert client.get(f"{prefix}/Archive/{token}").status_code == 404
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("GET")]
    assert lines[0].startswith(f"GET {prefix}/unsubscribe/… 200") and lines[1].startswith(f"GET {prefix}/Archive/… 404")
    assert token not in caplog.text


# -- the real command ---------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_digest_serve_answers_logs_and_stops_cleanly_on_a_signal(tmp_path, sig):
    room = Newsroom(tmp_path, subscribers=2)
    server = serve(room.config)
    port = server.port
    try:
        token = room.tokens.make(sid(room, 0))
        url = f"http://127.0.0.1:{port}{PREFIX}/unsubscribe/{token}"
        with httpx.Client(timeout=PATIENCE) as http:
            assert http.get(url).status_code == 200
            answer = http.post(url, data=ONE_CLICK)
            assert answer.status_code == 200 and answer.headers["content-security-policy"] == CSP
            assert "server" not in answer.headers
        assert room.store.get(room.emails[0]).status == "unsubscribed"
    finally:
        server.stop(sig)
    out, err = server.output()
    assert server.returncode == 0, err
    assert "Traceback" not in err
    assert "POST /digest/unsubscribe/… 200" in err and token not in err + out
    assert "Finished server process" in err or "Shutting down" in err
    assert f"http://127.0.0.1:{port}/digest" in out


@pytest.mark.parametrize("trusted, expected", [("127.0.0.1", 200), ("192.0.2.1", 403)])
def test_digest_serve_believes_forwarded_headers_only_from_the_trusted_proxy(tmp_path, trusted, expected):
    """Behind nginx the browser's origin is https://<public host>: the app knows the scheme only from
    X-Forwarded-Proto, which uvicorn takes from the trusted proxy address alone."""
    room = Newsroom(tmp_path, subscribers=1)
    server = serve(room.config, "--trusted-proxy", trusted)
    try:
        token = room.tokens.make(sid(room, 0))
        url = server.url(f"{PREFIX}/preferences/{token}")
        with httpx.Client(timeout=PATIENCE) as http:
            csrf = csrf_of(http.get(url).text)
            forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7",
                         "Host": "mirror.example.ma", "Origin": "https://mirror.example.ma"}
            answer = http.post(url, data={"csrf": csrf, "locale": "en", "action": "save"}, headers=forwarded)
            assert answer.status_code == expected
    finally:
        server.stop(signal.SIGTERM)
    assert room.store.get(room.emails[0]).locale == ("en" if expected == 200 else "fr")
