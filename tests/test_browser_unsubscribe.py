"""The whole path as a reader lives it, in headless Chromium against the real `digest serve`:
a real `digest send` writes the .eml, its List-Unsubscribe URL opens the confirmation page, the button
unsubscribes, the store says so and the next edition's ledger leaves the reader out; then the
preferences page (CSRF form, real browser) subscribes them again with other rubrics and their own hour.

Chromium is Debian's (/usr/bin/chromium, which .ci/run installs), driven by Playwright with
executable_path: no browser is ever downloaded. Screenshots go to $DIGEST_SCREENSHOTS or to a
folder of this test run; the test prints where.
"""
from __future__ import annotations

import re
import signal

from playwright.sync_api import sync_playwright

from support.browser import launch, new_page
from support.mail import parse
from support.newsroom import BASE_URL as BASE
from support.newsroom import Newsroom
from support.served import serve

# A 1×1 transparent PNG: what the page's pictures (on the newsroom's real site) get here, offline.
PIXEL = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000" "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


def test_unsubscribe_from_a_sent_email_in_chromium_then_subscribe_again(tmp_path, shots):
    room = Newsroom(tmp_path, subscribers=6)
    sent = room.cli("send")
    assert sent.returncode == 0, sent.stderr

    # The reader: reader0003, French, Culture and Société (tests/support/newsroom.py). Their message, as delivered.
    reader = room.emails[3]
    emls = [parse(f.read_bytes()) for f in sorted((tmp_path / "outbox").rglob("*.eml"))]
    message = next(m for m in emls if m["To"].addresses[0].addr_spec == reader)
    https_url = re.findall(r"<(https://[^>]+)>", message["List-Unsubscribe"])[0]
    assert https_url.startswith(f"{BASE}/unsubscribe/") and message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    server = serve(room.config)
    local = server.url("/digest")
    url = https_url.replace(BASE, local)
    problems: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                page = new_page(browser, viewport={"width": 390, "height": 844})
                # Nothing leaves the machine: the pictures of the archive page (https, elsewhere) get a pixel.
                page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"),
                           lambda route: route.fulfill(status=200, content_type="image/png", body=PIXEL))
                # A CSP violation, a failed load or a script error is a failure of the page.
                page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.on("requestfailed", lambda r: problems.append(f"failed {r.url}"))

                response = page.goto(url)
                assert response.status == 200
                assert "default-src 'none'" in response.headers["content-security-policy"]
                assert page.locator("h1").inner_text() == "Se désabonner du Quotidien\u202f?"
                assert page.locator("html").get_attribute("lang") == "fr"
                # The stylesheet loaded (from /digest/static/digest.css, under the CSP):
                color = page.locator("#unsubscribe").evaluate("b => getComputedStyle(b).backgroundColor")
                assert color == "rgb(155, 28, 28)"
                assert room.store.get(reader).status == "active"  # opening the link changed nothing
                page.screenshot(path=str(shots / "unsubscribe-1-confirm.png"), full_page=True)

                page.click("#unsubscribe")
                page.wait_for_selector("#unsubscribed")
                assert page.url == url  # answered in place: no redirect
                assert "Vous êtes désabonné(e)" in page.locator("h1").inner_text()
                page.screenshot(path=str(shots / "unsubscribe-2-done.png"), full_page=True)
                assert room.store.get(reader).status == "unsubscribed"

                # The next edition leaves them out: its ledger is made of active subscribers only.
                from datetime import UTC, datetime

                from digest.delivery.queue import Queue

                assert Queue(room.store).add_rows("quotidien-2026-11-30", datetime.now(UTC), None) == len(room.emails) - 1
                rows = room.ledger_rows()  # of both editions, by subscriber id
                assert room.store.get(reader).id in rows  # had the 29th…
                from sqlalchemy import select

                from digest.delivery.schema import deliveries

                with room.store.engine.connect() as conn:
                    next_ids = set(conn.execute(select(deliveries.c.subscriber_id)
                                                .where(deliveries.c.edition == "quotidien-2026-11-30")).scalars())
                assert room.store.get(reader).id not in next_ids  # …and not the 30th

                # Changed their mind: the link on the page opens the preferences (CSRF-protected form).
                page.click("a[href*='/preferences/']")
                page.wait_for_selector("#resubscribe")
                assert page.url == url.replace("/unsubscribe/", "/preferences/")
                page.check("input[name=locale][value=en]")
                page.check("input[name=rubric][value=sport]")
                assert page.is_checked("input[name=rubric][value=societe]")  # their current choice
                page.uncheck("input[name=rubric][value=societe]")
                assert page.input_value("#hour") == ""  # the newsroom's hour, until they pick one
                page.select_option("#hour", "06:00")
                # The hour's longest option ("À l’heure de la rédaction (dès sa parution)") fits a phone's width.
                assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
                page.screenshot(path=str(shots / "preferences-1-form.png"), full_page=True)
                page.click("#resubscribe")
                page.wait_for_selector("#notice")
                assert page.locator("#notice").inner_text() == "You are subscribed again."  # now in English
                page.screenshot(path=str(shots / "preferences-2-saved.png"), full_page=True)
                subscriber = room.store.get(reader)
                assert (subscriber.status, subscriber.locale, subscriber.rubrics, subscriber.delivery_time) == (
                    "active", "en", frozenset({"sport", "culture"}), "06:00")
                assert page.input_value("#hour") == "06:00"

                # The "view in your browser" page of the same email, under the same policy.
                archive_url = re.findall(rf"{re.escape(BASE)}/archive/[0-9-]+\.html",
                                         message.get_body(("plain",)).get_content())[0].replace(BASE, local)
                response = page.goto(archive_url)
                assert response.status == 200
                assert page.locator("h1").inner_text() == "dimanche 29 novembre 2026"
                page.screenshot(path=str(shots / "archive-edition.png"))
            finally:
                browser.close()
    finally:
        server.stop(signal.SIGTERM)
    _, log = server.output()
    assert problems == []
    token = https_url.rsplit("/", 1)[1]
    assert token not in log and "POST /digest/unsubscribe/… 200" in log and "POST /digest/preferences/… 200" in log
    print(f"\nscreenshots: {shots}")
