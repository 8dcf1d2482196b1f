"""The web archive: `digest build` and `digest send` write the edition's page, `digest serve` shows it
and the index; hostile feed content never becomes markup; every web string is translated."""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import replace
from datetime import date, datetime

import lxml.html
import pytest
from babel.messages.pofile import read_po
from jinja2.ext import babel_extract

from digest.core.errors import DigestError
from digest.core.model import Edition, Image, Item, Ranked, Section
from digest.pipeline import archive
from digest.pipeline.edition import prepare, publish_archive
from digest.pipeline.i18n import builtin_templates
from digest.pipeline.typography import typeset
from digest.web.serve import create_app

from support.mail import parse
from support.newsroom import BASE_URL as BASE
from support.newsroom import SITE, Newsroom
from support.paths import DAY, TZ

with warnings.catch_warnings():  # Starlette 1.x suggests a fork of httpx for its test client; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

@pytest.fixture(scope="module")
def sent(tmp_path_factory):
    """The example newsroom after a real `digest send` into its outbox."""
    room = Newsroom(tmp_path_factory.mktemp("newsroom"), subscribers=3)
    result = room.cli("send")
    assert result.returncode == 0, result.stderr
    return room


def client_for(settings, store=None) -> TestClient:
    return TestClient(create_app(settings, store), base_url=SITE, follow_redirects=False)


# -- written by build and send ----------------------------------------------------------------------

def test_send_writes_the_edition_page_into_the_archive_folder(sent):
    page = sent.tmp / "archive" / "2026-11-29.html"
    assert page.is_file() and sent.settings.archive == sent.tmp / "archive"
    assert not [p for p in page.parent.iterdir() if p.name.endswith(".tmp")]  # written atomically


def test_build_writes_it_too_and_says_so(tmp_path):
    room = Newsroom(tmp_path, subscribers=0)
    out = tmp_path / "edition"
    result = room.cli("build", "--out", str(out))
    assert result.returncode == 0, result.stderr
    page = tmp_path / "archive" / "2026-11-29.html"
    assert page.is_file() and str(page) in result.stdout
    assert {p.name for p in out.iterdir()} == {"digest.html", "digest.txt", "digest.eml"}


def test_without_a_config_file_there_is_no_archive_to_write(tmp_path):
    from digest.core.config import defaults

    made = prepare(replace(defaults(), archive=tmp_path / "archive"), DAY, [])
    assert publish_archive(made) is None and not (tmp_path / "archive").exists()


def test_an_unwritable_archive_folder_is_one_clear_error(tmp_path):
    room = Newsroom(tmp_path, subscribers=0)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    settings = replace(room.settings, archive=blocker / "archive")
    with pytest.raises(DigestError, match="cannot write the web archive page") as caught:
        archive.write_page(settings, room.day_edition.edition)
    assert "[archive]" in caught.value.hint


# -- what the page holds ----------------------------------------------------------------------------

def test_the_page_has_every_item_with_its_anchor_and_the_full_text_of_articles(sent):
    edition = sent.day_edition.edition
    html = (sent.tmp / "archive" / "2026-11-29.html").read_text(encoding="utf-8")
    root = lxml.html.document_fromstring(html)
    for ranked in edition.items:
        found = root.xpath(f'//*[@id="a-{ranked.item.id}"]')
        assert len(found) == 1, ranked.item.title
        text = found[0].text_content()
        assert typeset(ranked.item.title, ranked.item.lang) in text  # as the language's typography sets it
        if ranked.item.kind == "article":
            for paragraph in ranked.item.body:
                assert typeset(paragraph, ranked.item.lang) in text
    assert len(root.xpath("//h1")) == 1
    assert root.get("lang") == "fr" and root.get("dir") == "ltr"


def test_articles_without_a_url_have_their_text_on_the_page_and_the_email_links_there(sent):
    without_url = [r.item for r in sent.day_edition.edition.items if r.item.kind == "article" and not r.item.url]
    assert without_url, "the example has page-dump articles without a URL"
    eml = next((sent.tmp / "outbox").rglob("*.eml"))
    msg = parse(eml.read_bytes())
    html = msg.get_body(("html",)).get_content()
    links = set(re.findall(r'href="(https://[^"]+/archive/[^"]+)"', html))
    assert f"{BASE}/archive/2026-11-29.html" in {link.split("#")[0] for link in links}
    anchors = {link.split("#", 1)[1] for link in links if "#" in link}
    page = (sent.tmp / "archive" / "2026-11-29.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'id="(a-[0-9a-f]+)"', page))
    assert anchors and anchors <= ids
    for item in without_url:
        if f"a-{item.id}" in anchors:
            assert item.body[-1] in page


def test_the_view_in_browser_link_of_a_sent_email_is_served(sent):
    msg = parse(next((sent.tmp / "outbox").rglob("*.eml")).read_bytes())
    text = msg.get_body(("plain",)).get_content()
    links = sorted(set(re.findall(rf"{re.escape(BASE)}/archive/[0-9-]+\.html", text)))
    assert links == [f"{BASE}/archive/2026-11-29.html"]
    with client_for(sent.settings, sent.store) as client:
        for link in links:
            response = client.get(link.removeprefix("https://lequotidien.example.ma"))
            assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
            assert "public" in response.headers["cache-control"]
            assert response.text == (sent.tmp / "archive" / "2026-11-29.html").read_text(encoding="utf-8")
            css = client.get("/digest/static/digest.css")  # where the page's ../static/digest.css points
            assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
            assert ".r-politique { --rubric: #8e1b1b; }" in css.text


def test_the_index_lists_editions_newest_first_and_ignores_other_files(tmp_path):
    room = Newsroom(tmp_path, subscribers=0)
    edition = room.day_edition.edition
    for day in (date(2026, 11, 27), date(2026, 11, 29), date(2025, 12, 31), date(2026, 11, 28)):
        archive.write_page(room.settings, replace(edition, date=day))
    for junk in ("notes.txt", "2026-13-45.html", ".2026-11-30.html.tmp", "2026-11-30.htm", "index.html"):
        (room.settings.archive / junk).write_text("junk")
    (room.settings.archive / "2026-12-01.html").mkdir()
    assert archive.editions(room.settings.archive) == [date(2026, 11, 29), date(2026, 11, 28), date(2026, 11, 27),
                                                       date(2025, 12, 31)]
    with client_for(room.settings, room.store) as client:
        for path in ("/digest", "/digest/", "/digest/archive", "/digest/archive/"):
            page = client.get(path)
            assert page.status_code == 200, path
            hrefs = re.findall(r'<li><a href="([^"]+)"', page.text)
            assert hrefs == ["/digest/archive/2026-11-29.html", "/digest/archive/2026-11-28.html",
                             "/digest/archive/2026-11-27.html", "/digest/archive/2025-12-31.html"]
            assert "dimanche 29 novembre 2026" in page.text
        for junk in ("notes.txt", "2026-13-45.html", "2026-11-30.htm", "index.html", "2026-12-01.html"):
            assert client.get(f"/digest/archive/{junk}").status_code == 404


def test_an_empty_archive_says_so(tmp_path):
    room = Newsroom(tmp_path, subscribers=0)
    with client_for(room.settings, room.store) as client:
        page = client.get("/digest/archive/")
        assert page.status_code == 200 and "Pas encore d’édition." in page.text



# -- only regular files inside the folder -------------------------------------------------------------

def _archive_with_traps(tmp_path):
    """A newsroom whose archive folder holds one real page and, under page names, everything else."""
    room = Newsroom(tmp_path, subscribers=0)
    folder = room.settings.archive
    archive.write_page(room.settings, replace(room.day_edition.edition, date=date(2026, 11, 29)))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside_page = elsewhere / "2026-11-20.html"
    outside_page.write_text("<p>a page outside the archive folder: secret-outside</p>", encoding="utf-8")
    traps = {
        "2026-11-28.html": "/etc/passwd",                # a system file
        "2026-11-27.html": outside_page,                 # a page-like file elsewhere
        "2026-11-26.html": folder / "2026-11-29.html",   # even another page of the archive
        "2026-11-25.html": elsewhere,                    # a folder
        "2026-11-24.html": "2026-11-29.html",            # relative, inside the folder
    }
    for name, target in traps.items():
        (folder / name).symlink_to(target)
    os.mkfifo(folder / "2026-11-23.html")  # would block a plain open() for ever
    return room, list(traps) + ["2026-11-23.html"]


def test_symlinks_folders_and_fifos_in_the_archive_are_404_like_a_missing_page(tmp_path):
    room, traps = _archive_with_traps(tmp_path)
    with client_for(room.settings, room.store) as client:
        missing = client.get("/digest/archive/2026-11-01.html")
        assert missing.status_code == 404
        for name in traps:
            for method in ("GET", "HEAD"):
                response = client.request(method, f"/digest/archive/{name}")
                assert response.status_code == 404, (name, method)
                if method == "GET":
                    assert response.text == missing.text, name
                    assert "root:" not in response.text and "secret-outside" not in response.text
        real = client.get("/digest/archive/2026-11-29.html")
        assert real.status_code == 200
        assert real.content == (room.settings.archive / "2026-11-29.html").read_bytes()
        assert real.headers["content-length"] == str(len(real.content))
        assert "last-modified" in real.headers and "public" in real.headers["cache-control"]
        head = client.head("/digest/archive/2026-11-29.html")
        assert head.status_code == 200 and head.content == b""


def test_the_index_lists_only_regular_files(tmp_path):
    room, _ = _archive_with_traps(tmp_path)
    assert archive.editions(room.settings.archive) == [date(2026, 11, 29)]
    with client_for(room.settings, room.store) as client:
        hrefs = re.findall(r'<li><a href="([^"]+)"', client.get("/digest/archive/").text)
    assert hrefs == ["/digest/archive/2026-11-29.html"]


def test_a_page_is_read_through_one_descriptor_opened_without_following_links(tmp_path):
    """read_page opens the name once with O_NOFOLLOW and checks that very descriptor: replacing the
    page by a symlink at any moment gives either the old page or nothing, never the link's target."""
    room, _ = _archive_with_traps(tmp_path)
    folder = room.settings.archive
    page = (folder / "2026-11-29.html").read_bytes()
    assert archive.read_page(folder, "2026-11-29.html").body == page
    assert archive.read_page(folder, "2026-11-28.html") is None
    (folder / "2026-11-29.html").unlink()
    (folder / "2026-11-29.html").symlink_to(tmp_path / "elsewhere" / "2026-11-20.html")
    assert archive.read_page(folder, "2026-11-29.html") is None
    for name in ("../elsewhere/2026-11-20.html", "2026-11-29.html/", "2026-02-30.html", "2026-11-29.HTML"):
        assert archive.read_page(folder, name) is None

# -- hostile feed content ---------------------------------------------------------------------------

HOSTILE_RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:media="http://search.yahoo.com/mrss/">
<channel><title>Agence hostile</title><link>https://hostile.example/</link><description>x</description>
<item>
  <title>&lt;script&gt;alert("title")&lt;/script&gt; Le ministre &lt;img src=x onerror=alert(7)&gt;</title>
  <link>javascript:alert(1)</link>
  <pubDate>Sun, 29 Nov 2026 18:00:00 +0100</pubDate>
  <category>politique</category>
  <author>a@hostile.example ("&gt;&lt;svg onload=alert(9)&gt;)</author>
  <media:content url="javascript:alert(10)" medium="image"/>
  <content:encoded><![CDATA[<p>Premier paragraphe <script>alert(2)</script><img src="x" onerror="alert(3)">
  <a href="javascript:alert(4)">lien</a> <a href="JaVaScRiPt:alert(5)">l2</a> <a href="&#106;avascript:alert(11)">l3</a>
  <iframe src="https://evil.example/"></iframe><form action="https://evil.example/"><input name=x></form>
  <svg onload="alert(12)"></svg><style>body{display:none}</style> assez long pour faire un article,
  et encore des mots pour dépasser les quatre cents caractères qu'il faut à un article de flux : le
  gouvernement a présenté son plan, le parlement en débattra, les élections approchent et le ministre
  répond aux questions de la presse sur la diplomatie du royaume.</p>
  <p onclick="alert(6)">Deuxième paragraphe &lt;b onmouseover=alert(13)&gt;texte&lt;/b&gt;, avec data:text/html,&lt;script&gt;alert(14)&lt;/script&gt;
  et encore assez de texte pour que ce paragraphe compte lui aussi dans la longueur de l'article.</p>]]></content:encoded>
</item>
<item>
  <title>Lien piégé</title>
  <link>https://hostile.example/a" onmouseover="alert(8)</link>
  <pubDate>Sun, 29 Nov 2026 17:00:00 +0100</pubDate>
  <description>&lt;a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="&gt;clic&lt;/a&gt;</description>
</item>
</channel></rss>
"""


def _assert_inert(html: str) -> None:
    root = lxml.html.document_fromstring(html)
    assert not root.xpath("//script | //iframe | //object | //embed | //svg | //style | //form[not(@method)]")
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), (element.tag, name, value)
            if name in ("href", "src", "action", "formaction", "srcset", "xlink:href"):
                plain = re.sub(r"[\x00-\x20]", "", value).lower()
                assert plain.startswith(("https://", "http://", "./", "../", "/", "#")), (name, value)
                assert not plain.startswith(("javascript:", "data:", "vbscript:"))
    assert "<script" not in html.lower()


def test_hostile_feed_content_through_the_whole_pipeline_never_becomes_markup(tmp_path):
    feed = tmp_path / "hostile.xml"
    feed.write_text(HOSTILE_RSS, encoding="utf-8")
    room = Newsroom(tmp_path, subscribers=0)
    config = room.config.read_text(encoding="utf-8")
    config += f'\n[[sources]]\nname = "Agence hostile"\npath = "{feed}"\nkind = "feed"\n'
    room.config.write_text(config, encoding="utf-8")
    result = room.cli("build", "--out", str(tmp_path / "edition"))
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "archive" / "2026-11-29.html").read_text(encoding="utf-8")
    assert "Le ministre" in html and "Premier paragraphe" in html and "Lien piégé" in html
    _assert_inert(html)


def _item(title: str, **fields) -> Ranked:
    item = Item(kind=fields.pop("kind", "article"), title=title, published=datetime(2026, 11, 29, 18, tzinfo=TZ),
                source=fields.pop("source", "hostile"), **fields)
    return Ranked(item, "politique", 1.0)


def test_even_an_item_that_skipped_the_sanitiser_is_only_text_on_the_page(example_settings):
    """Defence in depth: if a source reader ever let markup through, the page still escapes it."""
    hostile = [
        _item('<script>alert(1)</script>', url="javascript:alert(2)", body=("<img src=x onerror=alert(3)>", "</p><script>x</script>")),
        _item('"><svg onload=alert(4)>', url="JaVaScRiPt:alert(5)", author='"><script>alert(6)</script>',
              image=Image(url="javascript:alert(7)", alt='" onerror="alert(8)')),
        _item("data", url="data:text/html,<script>alert(9)</script>", image=Image(url="data:image/png;base64,AAAA", alt="x")),
        _item("quote", url='https://ok.example/a" onmouseover="alert(10)', kind="brief", summary="<b onclick=alert(11)>"),
        _item("tab", url="java\tscript:alert(12)", kind="brief"),
        _item("http", url="http://legacy.example/story", image=Image(url="http://legacy.example/p.jpg", alt="photo")),
    ]
    edition = Edition(date=DAY, timezone="Africa/Casablanca", leads=(hostile[0],),
                      sections=(Section("politique", "Politique", "#8e1b1b", tuple(hostile[1:])),))
    html = archive.edition_page(example_settings, edition)
    _assert_inert(html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(3)&gt;" in html
    assert 'href="http://legacy.example/story"' in html and 'src="https://legacy.example/p.jpg"' in html
    for ranked in hostile:
        assert f'id="a-{ranked.item.id}"' in html


def test_the_archive_page_in_arabic_is_right_to_left(tmp_path):
    room = Newsroom(tmp_path, subscribers=0)
    settings = replace(room.settings, newsletter=replace(room.settings.newsletter, locale="ar"))
    html = archive.edition_page(settings, room.day_edition.edition)
    assert '<html lang="ar" dir="rtl">' in html and "الأحد، 29 نوفمبر 2026" in html


# -- translations -----------------------------------------------------------------------------------

def _web_msgids() -> set[str]:
    found: set[str] = set()
    for path in sorted((builtin_templates() / "web").glob("*.j2")):
        with path.open("rb") as handle:
            for _line, _function, message, _comments in babel_extract(handle, ("_", "gettext"), [], {
                    "extensions": "jinja2.ext.i18n", "trim_blocks": "yes", "lstrip_blocks": "yes"}):
                found.add(message if isinstance(message, str) else message[0])
    from digest.web.serve import (  # what the app says besides its templates
        DONE,
        NOTICES,
    )

    found |= {text for pair in NOTICES.values() for text in pair} | set(DONE.values())
    return found


@pytest.mark.parametrize("locale", ["fr", "ar"])
def test_every_string_of_the_web_pages_is_translated(locale):
    with (builtin_templates() / "locale" / locale / "LC_MESSAGES" / "digest.po").open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    ids = _web_msgids()
    assert {"Yes, unsubscribe", "Your preferences", "This link is not valid", "This form has expired",
            "Page not found", "All editions"} <= ids
    missing = [m for m in sorted(ids) if not (catalog.get(m) and catalog.get(m).string)]
    assert missing == []
