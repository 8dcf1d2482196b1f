"""The archive as an Atom feed (GET <base>/archive/feed.xml): the newest editions with their full content,
for readers who prefer a feed reader. Built by feedgen (lxml underneath: every text escaped as XML), from
the edition pages digest.pipeline.archive wrote; made again only when one of those pages changed."""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from datetime import UTC, date, datetime
from typing import cast

import lxml.etree
import lxml.html
from feedgen.feed import FeedGenerator

from digest.core.config import Settings
from digest.pipeline import archive, i18n

log = logging.getLogger("digest.serve")
ENTRIES = 20  # the newest editions: a feed reader keeps what it has seen


class Feed:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._made: tuple[tuple[str, int, int], ...] | None = None
        self._body = b""
        self._etag = ""

    def atom(self) -> tuple[bytes, str]:
        """The feed's bytes and ETag, as the archive folder stands now (made again only when a page
        changed: a feed reader asks every few minutes, and 20 editions are about a megabyte)."""
        days = archive.editions(self.settings.archive)[:ENTRIES]
        state = tuple(self._stat(day.isoformat()) for day in days)
        with self._lock:
            if state != self._made:
                self._body, self._made = self._build(days), state
                self._etag = '"' + hashlib.sha256(self._body).hexdigest()[:32] + '"'
            return self._body, self._etag

    def _stat(self, day: str) -> tuple[str, int, int]:
        try:
            info = os.stat(self.settings.archive / f"{day}.html", follow_symlinks=False)
        except OSError:
            return day, 0, 0
        return day, info.st_mtime_ns, info.st_size

    def _build(self, days: list[date]) -> bytes:
        news = self.settings.newsletter
        base = f"{news.base_url}/archive/"
        feed = FeedGenerator()
        feed.id(base)
        feed.title(news.name)
        feed.author({"name": news.name})
        feed.link(href=f"{base}feed.xml", rel="self")
        feed.link(href=base, rel="alternate")
        feed.language(news.locale)
        newest = datetime(1970, 1, 1, tzinfo=UTC)
        for day in reversed(days):  # feedgen puts each new entry first: oldest in, newest on top
            url = f"{base}{day.isoformat()}.html"
            page = archive.read_page(self.settings.archive, f"{day.isoformat()}.html")
            if page is None:
                continue
            modified = datetime.fromtimestamp(page.modified, UTC)
            try:
                content = _content(page.body, url)
            except (ValueError, lxml.etree.LxmlError) as exc:  # not a page digest wrote: left out
                log.warning("archive page %s left out of the feed: %s", day.isoformat(), type(exc).__name__)
                continue
            entry = feed.add_entry()
            entry.id(url)
            entry.title(i18n.long_date(day, news.locale))
            entry.link(href=url, rel="alternate")
            entry.updated(modified)
            entry.content(content, type="html")
            newest = max(newest, modified)
        feed.updated(newest)
        return bytes(feed.atom_str(pretty=False))


def _content(body: bytes, url: str) -> str:
    """The edition's <main>, its links made absolute (a feed reader shows it away from the site)."""
    document = cast(lxml.html.HtmlElement, lxml.html.document_fromstring(body))
    document.make_links_absolute(url)
    main = document.find(".//main")
    return lxml.html.tostring(main if main is not None else document.body, encoding="unicode")
