"""A reader signs up as a reader does, in headless Chromium against the real `digest serve`: the form is
filled and sent, the confirmation email arrives at a real SMTP server (aiosmtpd), its link opens a page
whose button confirms, the welcome email follows with the latest edition's link, the store says the
reader is active, and the next `digest send` delivers the edition to them, in their language."""
from __future__ import annotations

import re

from playwright.sync_api import sync_playwright

from digest.pipeline.archive import write_page

from support.browser import launch, new_page
from support.feed_server import FeedServer
from support.mail import parse
from support.newsroom import BASE_URL
from support.paths import EXAMPLES
from support.served import serve
from support.signup import CONFIRM_LINK, letters, signup_room
from support.smtp import SmtpServer


def test_a_reader_signs_up_in_chromium_confirms_and_gets_the_next_edition(tmp_path, shots):
    smtp = SmtpServer()
    room = signup_room(tmp_path, subscribers=3, smtp=f'host = "127.0.0.1"\nport = {smtp.port}\ntls = "none"',
                       min_seconds=1)
    write_page(room.settings, room.day_edition.edition)  # the archive's latest edition
    server = serve(room.config)
    local = server.url("/digest")
    problems: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                page = new_page(browser, viewport={"width": 390, "height": 844})
                # The browser asks the site's root for a favicon, which is the newsroom's site's, not ours.
                page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning")
                        and not m.location.get("url", "").endswith("/favicon.ico") else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
                response = page.goto(f"{local}/subscribe")
                assert response.status == 200 and "default-src 'none'" in response.headers["content-security-policy"]
                assert page.locator("h1").inner_text() == "S’abonner au Quotidien"
                box = page.locator("input[name=website]").bounding_box()
                assert box is None or box["x"] + box["width"] < 0  # the honeypot: off the screen, no person sees it
                page.fill("#email", "Nadia.Benali@Example.net")
                page.fill("#name", "Nadia")
                page.check("input[name=locale][value=en]")
                page.check("input[name=rubric][value=sport]")
                page.screenshot(path=str(shots / "signup-1-form.png"), full_page=True)
                # A person takes more than min_seconds (1 s here) to fill a form: so does this test.
                page.wait_for_timeout(1100)
                page.click("#subscribe")
                page.wait_for_selector("h1:text('Check your inbox')")
                page.screenshot(path=str(shots / "signup-2-inbox.png"), full_page=True)
                assert room.store.get("nadia.benali@example.net").status == "pending"

                server.wait_for(rb"confirm email signup-\d+ sent")
                [confirmation] = smtp.handler.messages
                assert confirmation.rcpt_tos == ["nadia.benali@example.net"]
                message = parse(confirmation.data)
                assert message["Subject"] == "Confirm your subscription to Le Quotidien"
                link = CONFIRM_LINK.search(message.get_body(("plain",)).get_content()).group()
                assert link in message.get_body(("html",)).get_content()  # the button's link, the same

                page.goto(link.replace(BASE_URL, local))
                page.wait_for_selector("#confirm")
                assert room.store.get("nadia.benali@example.net").status == "pending"  # opening it changed nothing
                page.screenshot(path=str(shots / "signup-3-confirm.png"), full_page=True)
                page.click("#confirm")
                page.wait_for_selector("#confirmed")
                page.screenshot(path=str(shots / "signup-4-confirmed.png"), full_page=True)
                reader = room.store.get("nadia.benali@example.net")
                assert (reader.status, reader.locale, reader.rubrics) == ("active", "en", frozenset({"sport"}))
            finally:
                browser.close()
        server.wait_for(rb"welcome email welcome-\d+-\d+ sent")
        welcome = parse(smtp.handler.messages[1].data)
        assert welcome["To"] == "nadia.benali@example.net"
        assert f"{BASE_URL}/archive/2026-11-29.html" in welcome.get_body(("plain",)).get_content()
    finally:
        server.stop()
    try:
        sent = room.cli("send")
        assert sent.returncode == 0, sent.stderr
        edition = smtp.handler.by_recipient()["nadia.benali@example.net"]
        assert len(edition) == 3  # the confirmation, the welcome, then the edition
        digest = parse(edition[2].data)
        assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert digest["Content-Language"] in (None, "en") and 'lang="en"' in digest.get_body(("html",)).get_content()
    finally:
        smtp.stop()
    _, log = server.output()
    assert problems == []
    assert re.search(r"POST /digest/subscribe/confirm/… 200", log) and "nadia" not in log.lower()
    assert link.rsplit("/", 1)[1] not in log  # the confirmation token is a credential: never in the log


def test_the_readme_snippet_on_the_newsrooms_own_site_signs_a_reader_up_in_one_more_step(tmp_path, shots):
    """examples/signup-form.html, the README's snippet, on a page of another origin (another port of
    127.0.0.1): allowed, it leads to our filled-in form, whose button sends the confirmation."""
    site = tmp_path / "site"
    site.mkdir()
    news = FeedServer(site)
    room = signup_room(tmp_path / "room", allowed_origins=[news.base], min_seconds=1)
    server = serve(room.config)
    snippet = (EXAMPLES / "signup-form.html").read_text(encoding="utf-8")
    snippet = snippet.replace(f"{BASE_URL}/subscribe", server.url("/digest/subscribe"))
    (site / "index.html").write_text(f'<!doctype html><html lang="fr"><meta charset="utf-8"><body>{snippet}</body></html>',
                                     encoding="utf-8")
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                page = new_page(browser)
                page.goto(news.url("index.html"))
                page.fill("input[name=email]", "lina@example.net")
                page.check("input[name=rubric][value=sport]")
                page.click("button[type=submit]")
                page.wait_for_selector("h1:text('Encore une étape')")
                assert page.url == server.url("/digest/subscribe")
                assert page.input_value("#email") == "lina@example.net" and page.is_checked("input[value=sport]")
                assert room.store.get("lina@example.net") is None  # nothing until the reader sends it from here
                page.screenshot(path=str(shots / "signup-snippet-step.png"), full_page=True)
                page.wait_for_timeout(1100)  # a person reads the page before the button: more than min_seconds
                page.click("#subscribe")
                page.wait_for_selector("h1:text('Consultez votre boîte de réception')")
            finally:
                browser.close()
        server.wait_for(rb"confirm email signup-\d+ sent")
    finally:
        server.stop()
        news.close()
    [event] = room.store.history("lina@example.net")
    assert event.source == f"{BASE_URL}/subscribe (form homepage)" and room.store.get("lina@example.net").rubrics == {"sport"}
    assert len(letters(tmp_path / "room")) == 1
