"""`digest preview`: a real server on a free port, pages parsed, a change on disk seen within a second
or so, and the page in Chromium reloading itself."""
from __future__ import annotations

import re
import shutil
import socket
import threading
import time

import httpx
import lxml.html
import pytest
import uvicorn
from babel.numbers import format_decimal
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from digest.web.preview import State, create_app

from support.browser import launch, new_page
from support.cli import digest
from support.paths import EXAMPLES
from support.ports import PATIENCE
from support.served import preview


@pytest.fixture
def newsroom(tmp_path):
    """A copy of the example newsroom the test may edit: sources, features, a theme folder."""
    shutil.copytree(EXAMPLES / "sources", tmp_path / "sources")
    shutil.copytree(EXAMPLES / "features", tmp_path / "features")
    (tmp_path / "theme" / "email").mkdir(parents=True)
    text = (EXAMPLES / "digest.toml").read_text(encoding="utf-8").replace('# theme = "theme"', 'theme = "theme"')
    (tmp_path / "digest.toml").write_text(text, encoding="utf-8")
    return tmp_path


@pytest.fixture
def server(newsroom):
    state = State(newsroom / "digest.toml", "2026-11-29", None)
    sock = socket.socket()  # bound here, on a port the kernel picks: nobody can take it before uvicorn
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(create_app(state), log_level="warning"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + PATIENCE
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the preview server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", state
    uv.should_exit = True
    thread.join(PATIENCE)
    sock.close()


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=PATIENCE)


def watching(newsroom, state: State) -> None:
    """Return once the preview's watcher sees changes: digest.toml rewritten as it is (a change
    nonetheless) until the version moves. Before that, an edit could come before the watch."""
    config = newsroom / "digest.toml"
    text = config.read_text(encoding="utf-8")
    before = state.version
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        config.write_text(text, encoding="utf-8")
        probe = time.monotonic() + 5  # an event comes within a second once watching: try again only then
        while time.monotonic() < probe:
            if state.version > before:
                return
            time.sleep(0.05)
    raise AssertionError("the preview's watcher never saw a change")


def test_the_page_shows_both_widths_the_text_twin_the_subject_size_and_checks(server):
    base, _ = server
    response = get(base + "/")
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    root = lxml.html.document_fromstring(response.text)
    assert root.get_element_by_id("subject").text_content().startswith("Bourita et Blinken")
    assert root.get_element_by_id("preheader").text_content()
    # Numbers and the checks in the newsroom's language, as the rest of the page.
    assert f"/ {format_decimal(100_000, locale='fr')}" in root.get_element_by_id("size").text_content()
    frames = root.findall(".//iframe")
    assert [f.get("class") for f in frames] == ["phone", "desktop"]
    assert {f.get("src") for f in frames} == {"email.html"}
    assert "Bourita et Blinken" in root.get_element_by_id("text").text_content()
    checks = [li.text_content() for li in root.get_element_by_id("checks")]
    assert len(checks) == 9 and all(c.startswith("✓") for c in checks), checks
    assert "✓ taille du texte" in checks and "✓ contraste" in checks
    assert "Aperçu" in root.findtext(".//title")  # the page's own strings come from the catalog


def test_only_this_machine_s_names_are_answered(server):
    base, _ = server
    assert httpx.get(base + "/", headers={"Host": "evil.example"}, timeout=PATIENCE).status_code == 400
    assert httpx.get(base + "/", headers={"Host": "localhost"}, timeout=PATIENCE).status_code == 200


def test_an_atomic_save_is_seen_too(server, newsroom):
    """Editors write a new file and rename it over the old one: the preview still follows."""
    import os

    base, state = server
    get(base + "/")
    watching(newsroom, state)
    config = newsroom / "digest.toml"
    for round_ in range(3):
        version = state.version
        partial = newsroom / f".digest.toml.{round_}"
        text = re.sub(r'^name = ".*"$', f'name = "Le Quotidien {round_}"', config.read_text(encoding="utf-8"),
                      count=1, flags=re.M)
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, config)
        assert _wait_for_version(base, version) < SEEN_WITHIN
    assert "Le Quotidien 2" in get(base + "/email.html").text


def test_the_selector_switches_language_and_rubrics(server):
    base, _ = server
    page = lxml.html.document_fromstring(get(base + "/?locale=ar&rubric=economie&rubric=sport").text)
    assert [f.get("src") for f in page.findall(".//iframe")][0] == "email.html?locale=ar&rubric=economie&rubric=sport"
    email = get(base + "/email.html?locale=ar&rubric=economie&rubric=sport")
    assert "script-src" not in email.headers["content-security-policy"] and "default-src 'none'" in email.headers["content-security-policy"]
    root = lxml.html.document_fromstring(email.text)
    assert root.get("dir") == "rtl" and root.get("lang") == "ar"
    sections = [h.text_content().strip() for h in root.xpath("//h2[contains(@class,'rubric-title')]")]
    assert sections[:2] == ["اقتصاد", "رياضة"]
    english = get(base + "/email.txt?locale=en").text
    assert "Sunday, November 29, 2026" in english and "Unsubscribe" in english


# How soon a change on disk is seen: the watcher's debounce is 0.2 s and about 0.2 s pass on an idle
# machine; the bound is loose so that it holds on a machine whose cores are busy, and still fails a
# preview that only finds the change later (on a poll, or the next event).
SEEN_WITHIN = 10.0


def _wait_for_version(base: str, above: int, timeout: float = PATIENCE) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if get(base + "/version").json()["version"] > above:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError("the preview did not see the change")


def test_editing_a_theme_file_a_source_or_the_config_rebuilds_the_preview(server, newsroom):
    base, state = server
    get(base + "/")  # warm: the edition is built
    watching(newsroom, state)

    version = state.version
    (newsroom / "theme" / "email" / "subject.txt.j2").write_text("Édition du soir — {{ date_long }}", encoding="utf-8")
    assert _wait_for_version(base, version) < SEEN_WITHIN
    root = lxml.html.document_fromstring(get(base + "/").text)
    assert root.get_element_by_id("subject").text_content() == "Édition du soir — dimanche 29 novembre 2026"

    version = state.version
    dump = newsroom / "sources" / "homepage-2026-11-29.txt"
    dump.write_text("- 23:55Dernière minute : un titre ajouté par la rédaction\n" + dump.read_text(encoding="utf-8"),
                    encoding="utf-8")
    assert _wait_for_version(base, version) < SEEN_WITHIN
    assert "Dernière minute\u00a0: un titre ajouté par la rédaction" in get(base + "/email.html").text

    version = state.version
    config = newsroom / "digest.toml"
    config.write_text(config.read_text(encoding="utf-8").replace('name = "Le Quotidien"', 'name = "Le Quotidien du Soir"'),
                      encoding="utf-8")
    assert _wait_for_version(base, version) < SEEN_WITHIN
    assert "Le Quotidien du Soir" in get(base + "/email.html").text


def test_a_broken_template_is_shown_not_crashed(server, newsroom):
    base, state = server
    get(base + "/")
    watching(newsroom, state)
    version = state.version
    (newsroom / "theme" / "email" / "subject.txt.j2").write_text("{{ oops }", encoding="utf-8")
    _wait_for_version(base, version)
    response = get(base + "/")
    assert "subject.txt.j2, line 1" in response.text
    (newsroom / "theme" / "email" / "subject.txt.j2").unlink()
    _wait_for_version(base, state.version)
    assert get(base + "/").status_code == 200


def test_the_page_reloads_itself_in_the_browser(server, newsroom, shots):
    base, state = server
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = new_page(browser, viewport={"width": 1400, "height": 1000})
            watching(newsroom, state)
            page.goto(base + "/")
            # The page has its first version from the server (preview.js's `seen`): a change now reloads it.
            deadline = time.monotonic() + PATIENCE
            while page.evaluate("seen") is None:
                assert time.monotonic() < deadline, "the page never heard from the server"
                time.sleep(0.05)
            frames = page.evaluate("[...document.querySelectorAll('iframe')].map(f => f.clientWidth)")  # the email's own viewport
            assert frames == [375, 640]
            (newsroom / "theme" / "email" / "subject.txt.j2").write_text("Rechargé tout seul", encoding="utf-8")
            deadline, subject = time.monotonic() + PATIENCE, None
            while subject != "Rechargé tout seul" and time.monotonic() < deadline:
                try:  # (the page's CSP forbids eval, so no wait_for_function)
                    subject = page.text_content("#subject", timeout=500)
                except PlaywrightError:  # the page is between two loads
                    subject = None
                time.sleep(0.1)
            assert subject == "Rechargé tout seul"
            page.screenshot(path=str(shots / "preview.png"))
        finally:
            browser.close()


def test_the_command_prints_the_url_and_refuses_a_bad_config(tmp_path):
    bad = tmp_path / "digest.toml"
    bad.write_text("[newsletter]\nlocale = 'xx'\n", encoding="utf-8")
    result = digest("preview", "-c", str(bad))
    assert result.returncode == 2 and "newsletter.locale" in result.stderr and "Traceback" not in result.stderr
    server = preview(EXAMPLES / "digest.toml", "--date", "2026-11-29")
    try:
        assert f"{server.base}/" in server.first_line()
        assert get(f"{server.base}/").status_code == 200
    finally:
        server.stop()
