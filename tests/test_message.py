"""The .eml, parsed back with email.policy.default: what a mail server and a mail app rely on."""
from __future__ import annotations

import pytest

from digest.core.errors import ConfigError
from digest.core.model import Rendered, Variant
from digest.pipeline import message

from support.mail import parse

SINGLE = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version")


def rendered(subject="Le Quotidien · 29 novembre — À la une", html="<!doctype html><html><body><p>é</p></body></html>", text="é\n"):
    return Rendered(Variant(), subject, "pré", html, text)


def test_multipart_alternative_text_first_html_last_utf8():
    raw = message.to_bytes(message.build(rendered(), "Le Quotidien <digest@lequotidien.example.ma>", "lectrice@example.com", "q-2026-11-29"))
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert parts[0].get_content().replace("\r\n", "\n") == "é\n"
    assert "<p>é</p>" in parts[1].get_content()


def test_one_of_each_required_header():
    msg = parse(message.to_bytes(message.build(rendered(), "Le Quotidien <digest@lequotidien.example.ma>", "a@example.com", "k")))
    for name in SINGLE:
        assert len(msg.get_all(name, [])) == 1, name
    assert msg["MIME-Version"] == "1.0"
    assert msg["To"] == "a@example.com"
    assert "Cc" not in msg and "Bcc" not in msg


def test_non_ascii_subject_is_rfc2047_encoded_and_decodes_back():
    raw = message.to_bytes(message.build(rendered(), "Le Quotidien <digest@lequotidien.example.ma>", "a@example.com", "k"))
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in header_block
    assert header_block.isascii()
    assert parse(raw)["Subject"] == "Le Quotidien · 29 novembre — À la une"


def test_ascii_subject_is_not_encoded():
    raw = message.to_bytes(message.build(rendered(subject="Daily digest"), "News <n@example.com>", "a@example.com", "k"))
    assert b"Subject: Daily digest\r\n" in raw


def test_no_line_over_998_octets_even_for_one_line_html():
    html = "<!doctype html><html><body>" + "<p>Actualité du jour</p>" * 5000 + "</body></html>"
    raw = message.to_bytes(message.build(rendered(html=html), "News <n@example.com>", "a@example.com", "k"))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert parse(raw).get_body(("html",)).get_content().rstrip("\r\n") == html


def test_message_id_is_deterministic_per_edition_and_recipient():
    a = message.message_id("q-2026-11-29", "A@example.com", "example.ma")
    assert a == message.message_id("q-2026-11-29", "a@example.com", "example.ma")
    assert a != message.message_id("q-2026-11-29", "b@example.com", "example.ma")
    assert a != message.message_id("q-2026-11-30", "a@example.com", "example.ma")
    assert a.startswith("<") and a.endswith("@example.ma>")


def test_same_input_same_bytes(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1796000000")
    build = lambda: message.to_bytes(message.build(rendered(), "News <n@example.com>", "a@example.com", "k"))  # noqa: E731
    assert build() == build()
    assert b"Date: Mon, 30 Nov 2026 00:53:20 +0000" in build()


def test_cr_lf_in_subject_or_header_values_cannot_add_a_header():
    hostile = rendered(subject="Alerte\r\nBcc: victim@example.com\r\nX-Evil: 1")
    extra = {"List-Id": "Le Quotidien\r\nX-Injected: yes <q.example.ma>"}
    raw = message.to_bytes(message.build(hostile, "News <n@example.com>", "a@example.com", "k", extra_headers=extra))
    msg = parse(raw)
    assert msg.get_all("Bcc") is None and msg.get_all("X-Evil") is None and msg.get_all("X-Injected") is None
    assert "\n" not in msg["Subject"] and "victim@example.com" in msg["Subject"]
    assert sorted(set(msg.keys())) == sorted({*SINGLE, "List-Id", "Content-Type"})


def test_cr_lf_in_the_sender_is_refused():
    with pytest.raises(ConfigError):
        message.parse_sender("Evil\r\nBcc: x@example.com <n@example.com>")


def test_non_ascii_display_name_is_encoded_and_domain_goes_out_as_idna():
    raw = message.to_bytes(message.build(rendered(), "Le Quotidien — Édition <digest@journal-é.ma>", "a@example.com", "k"))
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert b"xn--journal--" in head
    assert parse(raw)["From"].addresses[0].display_name == "Le Quotidien — Édition"


@pytest.mark.parametrize("sender", ["not an address", "Jöhn <jöhn@example.com>", "a@b.c, d@e.f"])
def test_bad_sender_is_a_config_error(sender):
    with pytest.raises(ConfigError):
        message.parse_sender(sender)
