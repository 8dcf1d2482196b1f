"""The archive as an Atom feed (GET <base>/archive/feed.xml): every edition of the archive folder, newest
first, with its full content and absolute links, read back by a real feed parser (feedparser)."""
from __future__ import annotations

import os
from dataclasses import replace
from datetime import date

import feedparser
import pytest

from digest.pipeline import archive
from digest.web.serve import create_app

from support.newsroom import BASE_URL, PREFIX, Newsroom
from support.signup import client


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    room = Newsroom(tmp_path_factory.mktemp("feed"), subscribers=1)
    edition = room.day_edition.edition
    archive.write_page(room.settings, edition)
    archive.write_page(room.settings, replace(edition, date=date(2026, 11, 28)))
    return room


def test_the_feed_has_each_edition_newest_first_with_its_full_content(room):
    http = client(create_app(room.settings, room.store))
    answer = http.get(f"{PREFIX}/archive/feed.xml")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(answer.content)
    assert not feed.bozo, feed.bozo_exception
    assert feed.feed.title == "Le Quotidien" and feed.version == "atom10"
    assert [e.link for e in feed.entries] == [f"{BASE_URL}/archive/2026-11-29.html", f"{BASE_URL}/archive/2026-11-28.html"]
    assert feed.entries[0].title == "dimanche 29 novembre 2026"
    content = feed.entries[0].content[0].value
    lead = room.day_edition.edition.leads[0].item
    assert lead.title in content and len(content) > 5000  # the whole edition, not a summary
    assert 'href="../' not in content and 'href="./' not in content  # links work away from the site
    assert 'href="https://' in content
    index = http.get(f"{PREFIX}/archive/").text
    assert f'type="application/atom+xml" href="{PREFIX}/archive/feed.xml"' in index


def test_the_feed_follows_the_archive_when_a_page_changes(room):
    http = client(create_app(room.settings, room.store))
    first = http.get(f"{PREFIX}/archive/feed.xml")
    assert http.get(f"{PREFIX}/archive/feed.xml").content == first.content  # made once while nothing changes
    again = http.get(f"{PREFIX}/archive/feed.xml", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""  # a feed reader that has it gets nothing more
    page = archive.page_path(room.settings, date(2026, 11, 28))
    page.write_text(page.read_text(encoding="utf-8").replace("</main>", "<p>Correction : une précision.</p></main>"),
                    encoding="utf-8")
    os.utime(page, ns=(0, page.stat().st_mtime_ns + 1_000_000_000))
    changed = http.get(f"{PREFIX}/archive/feed.xml", headers={"If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200 and changed.headers["etag"] != first.headers["etag"]
    after = feedparser.parse(changed.content)
    assert "Correction : une précision." in after.entries[1].content[0].value
