"""Personalisation: a string fill of a once-encoded variant, byte for byte what encoding it afresh gives."""
from __future__ import annotations

import email
from email import policy

from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from digest.core.model import Rendered, Variant
from digest.delivery.personalize import Recipient, Template, encoded_words, format_to
from digest.pipeline.render import SLOT_TOKEN
from subscribers.tokens import TOKEN_LENGTH

TOKEN = "01" + "000000002a" + "A" * 30 + "-_"


def template(text: str, html: str) -> Template:
    rendered = Rendered(Variant(), "Le Quotidien · 29 novembre", "pré", html, text)
    return Template(rendered, sender="Le Quotidien <digest@lequotidien.example.ma>", edition_key="q-2026-11-29",
                    list_id="q.lequotidien.example.ma", list_name="Le Quotidien", base_url="https://lequotidien.example.ma/d",
                    token_length=TOKEN_LENGTH, unsubscribe_mailto="unsubscribe@lequotidien.example.ma")


def test_filled_message_equals_the_rendered_parts_with_the_token():
    # Long lines put soft line breaks of quoted-printable at every place, including inside the slot.
    text = "".join(f"{'x' * n} lien : https://lequotidien.example.ma/d/unsubscribe/{SLOT_TOKEN}\n" for n in range(0, 80, 3))
    html = "<p>" + "".join(f"{'é' * n}<a href=\"https://x/{SLOT_TOKEN}\">désabonner</a>" for n in range(60)) + "</p>"
    tpl = template(text, html)
    msg = email.message_from_bytes(tpl.fill(Recipient(42, "lectrice@example.com", "Lectrice", TOKEN)), policy=policy.default)
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == text.replace(SLOT_TOKEN, TOKEN)
    assert msg.get_body(("html",)).get_content().replace("\r\n", "\n").rstrip("\n") == html.replace(SLOT_TOKEN, TOKEN)


def test_wire_form_is_exactly_what_aiosmtplib_would_send():
    text = f".une ligne qui commence par un point\n..et deux\n{SLOT_TOKEN}\n.\n"
    tpl = template(text, f"<p>{SLOT_TOKEN}</p>\n.<b>point</b>")
    recipient = Recipient(42, "lectrice@example.com", "Lectrice", TOKEN)
    plain = tpl.fill(recipient)
    expected = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(plain))
    assert bytes(tpl.fill_wire(recipient)) == expected
    assert b"\r\n..une ligne" in expected  # the case is really exercised


def test_tokens_of_the_wrong_length_are_refused():
    tpl = template(f"{SLOT_TOKEN}\n", f"<p>{SLOT_TOKEN}</p>")
    try:
        tpl.fill(Recipient(1, "a@example.com", "", "short"))
    except ValueError:
        return
    raise AssertionError("a short token was accepted")


def test_display_names_quoted_or_encoded_never_broken():
    assert format_to("Salma Alaoui", "s@example.com") == "Salma Alaoui <s@example.com>"
    assert format_to('Dr. "Amine", Rabat', "a@example.com") == '"Dr. \\"Amine\\", Rabat" <a@example.com>'
    assert format_to("", "a@example.com") == "a@example.com"
    for name in ["سلمى العلوي", "Zoé Benjelloun", "محمد أمين بن عبد الله الإدريسي العلوي المراكشي", "x\r\nBcc: y@example.com"]:
        header = f"To: {format_to(name, 'a@example.com')}\r\n\r\n"
        assert "\r\nBcc" not in header[:-4]
        parsed = email.message_from_string(header, policy=policy.default)
        assert parsed["To"].addresses[0].addr_spec == "a@example.com"
        assert all(len(word) <= 75 for word in encoded_words(name).split())
